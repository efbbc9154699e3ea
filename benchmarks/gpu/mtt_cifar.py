"""Stage 5 of ``benchmarks/gpu/run_all.sh``: a time-boxed MTT run on CIFAR-10-JPEG.

    PYTHONPATH=. python benchmarks/gpu/mtt_cifar.py --root /tmp/data/cifar10-jpeg --ipc 10 \
        --device cuda --seconds 200 --out OUT

What ``dc-condense --method mtt --dataset imagefolder --preset paper`` does (the same
``dc_plugins.cli.load_data``, ``make_condenser``, ``make_experts``, ``Matcher.run`` and
``evaluate_set``), with three differences so that it fits a few minutes of a GPU lease:

* a few experts (``--experts``, default 2) of ``--expert-epochs`` epochs each (default 21: the
  paper's ipc-10 window, start epochs 0-19 plus M = 2, needs 21; the paper trains 100 experts of
  50 epochs), kept in memory;
* the iterations are time-boxed: ``Matcher.run`` is called in chunks of ``--chunk`` iterations
  until the preset's count (paper: 5000) is reached or ``--seconds`` (this process's budget,
  from its start) minus ``--eval-reserve`` is spent; ``result.json`` says how many ran;
* the RunConfig is built in Python, not from the command line, so that pydantic (which the
  CLI's flag parsing uses and the GPU machine's image lacks) is not needed.

Everything else is the paper preset's (N = 30 synthetic steps, M = 2, start < 20, lr_img 1000,
lr_lr 1e-5, lr_teacher 0.01, real initialisation, DSA), with ZCA on (``--zca on``, the paper's
choice for CIFAR-10 at ipc <= 10; the preset's rule sees the dataset name ``imagefolder`` and
would leave it off). Evaluation: ``--eval-networks`` (default 3) ConvNets trained together
(``eval.parallel``) for the protocol's epochs (1000 with DSA), in the ZCA space, with the learned
step size. Writes ``OUT/progress.json`` after every chunk and ``OUT/result.json`` at the end
(``OUT/set.pt`` too); numbers are of a truncated run, labelled so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T0 = time.perf_counter()


def write(path: Path, data: dict) -> None:
    from dc_plugins.io import write_json

    write_json(path, data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="image folder holding train/ and test/")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--preset", default="paper")
    p.add_argument("--net", default="convnet")
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--experts", type=int, default=2, help="expert trajectories to train (paper: 100)")
    p.add_argument("--expert-epochs", type=int, default=21, help="epochs per expert (paper: 50)")
    p.add_argument("--zca", choices=("on", "off", "preset"), default="on")
    p.add_argument("--iterations", type=int, default=None, help="at most this many (default: the preset's)")
    p.add_argument("--chunk", type=int, default=10, help="iterations between time checks")
    p.add_argument("--seconds", type=float, default=300, help="this process's budget, from its start")
    p.add_argument("--eval-reserve", type=float, default=60, help="seconds kept for the evaluation")
    p.add_argument("--eval-networks", type=int, default=3)
    p.add_argument("--eval-epochs", type=int, default=None, help="default: the protocol's")
    p.add_argument("--eval-parallel", type=int, default=None, help="default: all networks at once")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from dc_plugins.cli import load_data, run_fingerprint
    from dc_plugins.condense import make_condenser
    from dc_plugins.config import EvalConfig, RunConfig, TrajectoryConfig, resolve
    from dc_plugins.device import resolve_device, tune_malloc
    from dc_plugins.evaluation import evaluate_set
    from dc_plugins.fingerprint import config_hash

    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    traj = TrajectoryConfig(num_experts=args.experts, expert_train_epochs=args.expert_epochs,
                            zca=None if args.zca == "preset" else args.zca == "on")
    ev = EvalConfig(networks=args.eval_networks, epochs=args.eval_epochs,
                    parallel=args.eval_parallel or max(1, args.eval_networks))
    cfg = resolve(RunConfig(method="mtt", dataset="imagefolder", root=args.root, ipc=args.ipc, preset=args.preset,
                            seed=args.seed, device=args.device, out=str(out), net=args.net, iterations=args.iterations,
                            trajectory=traj, eval=ev))
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    result: dict = {"what": (f"MTT on CIFAR-10-JPEG, ipc {cfg.ipc}, preset {cfg.preset}, TRUNCATED: "
                             f"{args.experts} experts x {args.expert_epochs} epochs (paper: 100 x 50), "
                             "iterations time-boxed"),
                    "command": " ".join(sys.argv), "device": str(device),
                    "gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
                    "iterations_cap": cfg.iterations, "budget_seconds": args.seconds,
                    "preset_iterations": resolve(RunConfig(method="mtt", dataset="imagefolder", ipc=cfg.ipc,
                                                           preset=cfg.preset)).iterations}

    t = time.perf_counter()
    train, test = load_data(cfg, device, progress=False)
    result["load_seconds"] = time.perf_counter() - t
    fingerprint = run_fingerprint(cfg, train, test)
    condenser = make_condenser(train, cfg.method, cfg.ipc, net=cfg.net, matching=cfg.matching,
                               selection=cfg.selection, preset=cfg.preset, seed=cfg.seed,
                               trajectory=cfg.trajectory, progress=False)
    t = time.perf_counter()
    condenser.experts = condenser.make_experts(None)  # in memory: 2 x 22 snapshots stay off the disk
    if cuda:
        torch.cuda.synchronize()
    result["experts_seconds"] = time.perf_counter() - t
    result["experts_seconds_per_epoch"] = result["experts_seconds"] / (args.experts * args.expert_epochs)
    print(f"experts: {args.experts} x {args.expert_epochs} epochs in {result['experts_seconds']:.1f} s", flush=True)

    stop_at = args.seconds - args.eval_reserve
    start = time.perf_counter()
    while condenser.iteration < cfg.iterations and time.perf_counter() - T0 < stop_at:
        condenser.run(min(condenser.iteration + args.chunk, cfg.iterations), progress=False)
        if cuda:
            torch.cuda.synchronize()
        spent = time.perf_counter() - start
        progress = {"iterations": condenser.iteration, "seconds": spent,
                    "seconds_per_iteration": spent / condenser.iteration, "last_loss": condenser.losses[-1],
                    "syn_lr": float(condenser.syn_lr.detach())}
        write(out / "progress.json", progress)
        print(f"iteration {condenser.iteration}: {progress['seconds_per_iteration']:.3f} s/it, "
              f"loss {progress['last_loss']:.4f}", flush=True)
    seconds = time.perf_counter() - start
    ran = condenser.iteration
    syn = condenser.synthetic_set()
    syn.save(out / "set.pt")
    result.update(iterations_run=ran, condense_seconds=seconds, seconds_per_iteration=seconds / ran if ran else None,
                  estimated_preset_seconds=seconds / ran * result["preset_iterations"] if ran else None,
                  losses_first_last=[condenser.losses[0], condenser.losses[-1]] if ran else None,
                  syn_lr=float(condenser.syn_lr.detach()),
                  cuda_peak_mb=torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None)
    if cfg.eval.networks > 0:
        t = time.perf_counter()
        res = evaluate_set(syn, test, config=cfg.eval, seed=cfg.seed, progress=False,
                           zca=getattr(condenser, "zca", None))
        result.update(accuracy_mean=res.mean, accuracy_std=res.std, accuracies=res.accuracies, eval_epochs=res.epochs,
                      eval_augment=res.augment, eval_net=res.net, eval_lr=res.lr, eval_seconds=time.perf_counter() - t,
                      eval_parallel=cfg.eval.parallel)
        print(f"evaluation: {100 * res.mean:.2f} +- {100 * res.std:.2f} % over {len(res.accuracies)} networks "
              f"({res.epochs} epochs, {result['eval_seconds']:.1f} s)", flush=True)
    result.update(total_seconds=time.perf_counter() - T0, config=cfg.to_dict(), fingerprint=fingerprint,
                  config_hash=config_hash(fingerprint))
    write(out / "result.json", result)
    print(f"wrote {out / 'result.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
