"""Evaluation speed: K networks trained one by one (the loop) against K trained as one stacked
model (``EvalConfig.parallel = K``), in the same run, on random real MNIST-10k images.

    PYTHONPATH=. python benchmarks/eval_speed.py                       # K 1/5/20 x ipc 1/10/50
    PYTHONPATH=. python benchmarks/eval_speed.py --ipc 1 10 --only 'ipc*-k20' 'ipc*-k1' --epochs 50 10
    PYTHONPATH=. python benchmarks/eval_speed.py --quick               # seconds: a smoke run

Each case (``ipc<I>-k<K>``, both paths) runs in its own subprocess, so that its peak resident
memory (``wait4``'s ``ru_maxrss``; on CUDA also ``max_memory_allocated``) is its own. The set is
``ipc`` random real images per class of MNIST-10k's 8,000 "train" images (28 px padded to 32, as
``load_dataset(..., image_size=32)`` gives), tested on its 2,000 "t10k" images; the network is the
protocol's ConvNet (w128-d3, instance norm) and the epochs the protocol's
(``evaluation_augment``: MNIST is evaluated with DC's augmentation, hence 1000 epochs at every
ipc). ``--epochs N`` (or one N per ipc) trains N epochs instead and extrapolates the training seconds linearly to
the protocol's epochs (every epoch has the same shapes, hence the same cost; the columns say
which figures are measured and which extrapolated). ``--profile`` adds a ``torch.profiler``
table of a few epochs of each path of the first case with K > 1.

Writes ``<out>/eval_speed.json`` and ``<out>/eval_speed.md`` (machine, torch version and thread
count in both), replacing earlier files of the same name atomically.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "eval_speed"


def machine() -> dict:
    """The library's machine record; imported on call, so that importing this module stays torch-free."""
    from dc_plugins.device import machine_info

    return machine_info()


def matmul_gflops(device: str, n: int = 2048, reps: int = 10) -> float:
    """float32 matrix-product rate: the yardstick for how close a training step is to the machine's peak."""
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def step_flops(spec, batch: int) -> int:
    """Floating-point operations of one forward + backward of one network on ``batch`` images."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from dc_plugins.models import make_convnet

    net = make_convnet(spec, generator=torch.Generator().manual_seed(0))
    x, y = torch.randn(batch, spec.channels, spec.image_size, spec.image_size), torch.zeros(batch, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), y).backward()
    return int(counter.get_total_flops())


def run_case(args: argparse.Namespace) -> dict:
    """One ``ipc``/``K`` case, loop then batched, in this process (the subprocess side)."""
    import torch

    from dc_plugins.config import EvalConfig
    from dc_plugins.data import load_dataset, make_generator, subsample_per_class
    from dc_plugins.evaluation import evaluate_set, evaluation_augment
    from dc_plugins.models import ConvNetSpec
    from dc_plugins.synthetic import SyntheticSet

    device = args.device
    train = load_dataset("mnist", root=args.root, image_size=32, device=device)
    test = load_dataset("mnist", root=args.root, train=False, image_size=32, device=device)
    real = subsample_per_class(train, args.ipc, make_generator(args.seed))
    syn = SyntheticSet(real.images, real.labels, "random", "mnist", args.ipc)
    spec = ConvNetSpec.parse(args.net).with_data(test.channels, test.num_classes, test.image_size)
    kind, augment = evaluation_augment("auto", "random", "mnist", spec)
    protocol_epochs = 1000 if augment is not None else 300
    epochs = args.epochs or protocol_epochs
    steps_per_epoch = -(-len(real) // 256)
    flops_epoch = sum(step_flops(spec, min(256, len(real) - s)) for s in range(0, len(real), 256))
    out = {"case": f"ipc{args.ipc}-k{args.k}", "ipc": args.ipc, "k": args.k, "images": len(real),
           "net": str(spec), "augment": kind, "protocol_epochs": protocol_epochs, "epochs_run": epochs,
           "steps_per_epoch": steps_per_epoch, "gflop_per_network_epoch": flops_epoch / 1e9,
           "test_images": len(test), "seed": args.seed}
    for path, parallel in (("loop", 1), ("batched", args.k)):
        if args.k == 1 and path == "batched":
            # one network: evaluate_set takes the loop; time the stacked trainer on its own
            parallel = None
        if device != "cpu":
            torch.cuda.reset_peak_memory_stats()
        cfg = EvalConfig(networks=args.k, epochs=epochs, net=args.net, parallel=parallel or 1)
        if parallel is None:
            res = _one_stacked(syn, test, cfg, spec, args.seed)
        else:
            res = evaluate_set(syn, test, config=cfg, spec=spec, seed=args.seed, progress=False)
        scale = protocol_epochs / epochs
        out[path] = {"seconds": res.seconds, "train_seconds": res.train_seconds,
                     "test_seconds": res.seconds - res.train_seconds,
                     "protocol_seconds": res.train_seconds * scale + (res.seconds - res.train_seconds),
                     "extrapolated": epochs != protocol_epochs,
                     "train_gflops": flops_epoch * epochs * args.k / max(res.train_seconds, 1e-9) / 1e9,
                     "accuracy_mean": res.mean, "accuracy_std": res.std, "accuracies": res.accuracies,
                     "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if device != "cpu" else None}
    out["speedup"] = out["loop"]["protocol_seconds"] / out["batched"]["protocol_seconds"]
    if args.profile:
        out["profile"] = profile_case(syn, spec, args)
    return out


def _one_stacked(syn, test, cfg, spec, seed):
    """One network through the stacked trainer (evaluate_set trains a lone network in the loop)."""
    import time as _time

    from dc_plugins.evaluation import EvalResult, evaluation_augment, network_generators
    from dc_plugins.models import make_convnet
    from dc_plugins.stacked import train_stacked
    from dc_plugins.training import accuracy

    kind, augment = evaluation_augment(cfg.augment, syn.method, test.info.name, spec)
    start = _time.perf_counter()
    gens = network_generators(seed, 1)
    nets = [make_convnet(spec, generator=gens[0], device=test.images.device)]
    train_stacked(nets, syn.images.to(test.images.device), syn.labels.to(test.images.device), epochs=cfg.epochs,
                  generators=gens, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, batch=cfg.batch,
                  augment=augment)
    train_s = _time.perf_counter() - start
    accs = [accuracy(nets[0], test.images, test.labels)]
    return EvalResult(accs, cfg.epochs, kind, str(spec), _time.perf_counter() - start, [], train_s)


def profile_case(syn, spec, args, epochs: int = 3) -> dict:
    """torch.profiler's top operators (self CPU time) of ``epochs`` epochs of each path."""
    from torch.profiler import ProfilerActivity, profile

    from dc_plugins.config import EvalConfig
    from dc_plugins.data import ImageDataset, dataset_info
    from dc_plugins.evaluation import evaluate_set

    tables = {}
    # a tiny test split: the profile is about training
    small = ImageDataset(syn.images[:10], syn.labels[:10], dataset_info("mnist"), "test")
    for path, parallel in (("loop", 1), ("batched", args.k)):
        cfg = EvalConfig(networks=args.k, epochs=epochs, net=args.net, parallel=parallel)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            evaluate_set(syn, small, config=cfg, spec=spec, seed=args.seed, progress=False)
        tables[path] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40)
    return tables


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Evaluation speed: loop vs batched ({result['date']})", "",
             f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), torch {m['torch']}, {m['threads']} threads"
             + (f", GPU {m['cuda']}" if m["cuda"] else "") + f"; device {result['device']}; float32 matmul "
             f"{result['matmul_gflops']:.0f} GFLOP/s.", "",
             f"Command: `{result['command']}`", "",
             ("Data: MNIST-10k (8,000 train / 2,000 test images of the official MNIST test set), ipc random "
              f"real images per class, 28 px padded to 32; {result['net']}; DC augmentation "
              "(the protocol's rule for MNIST), batch 256. Seconds for K networks (training + testing); "
              "'protocol s' is for the protocol's epochs, extrapolated linearly from the epochs run where "
              "they differ. GFLOP/s: training FLOPs (forward + backward) per second."), "",
             ("| case | images | epochs run / protocol | loop s (run) | batched s (run) | loop protocol s | "
              "batched protocol s | speed-up | loop GFLOP/s | batched GFLOP/s | loop peak MB | batched peak MB | "
              "accuracy loop / batched (%) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cases"]:
        lo, ba = c["loop"], c["batched"]
        ext = "*" if lo["extrapolated"] else ""
        lines.append(
            f"| {c['case']} | {c['images']} | {c['epochs_run']} / {c['protocol_epochs']} | {lo['seconds']:.1f} | "
            f"{ba['seconds']:.1f} | {lo['protocol_seconds']:.0f}{ext} | {ba['protocol_seconds']:.0f}{ext} | "
            f"{c['speedup']:.2f}x | {lo['train_gflops']:.0f} | {ba['train_gflops']:.0f} | "
            f"{c['peak_rss_mb']['loop']:.0f} | {c['peak_rss_mb']['batched']:.0f} | "
            f"{100 * lo['accuracy_mean']:.1f} ± {100 * lo['accuracy_std']:.1f} / "
            f"{100 * ba['accuracy_mean']:.1f} ± {100 * ba['accuracy_std']:.1f} |")
    lines += ["", ("`*` extrapolated from the epochs run. Peak MB: peak resident memory of a subprocess; the "
                   "batched column is of the process that runs the case (loop, then batched: the maximum of both), "
                   "the loop column of a process that trains and tests one network by the loop (the loop's peak "
                   "does not grow with K)."), ""]
    for c in result["cases"]:
        for path, table in c.get("profile", {}).items():
            lines += [f"## Profile, {c['case']}, {path} (self CPU time, {3} epochs)", "", "```", table, "```", ""]
    return "\n".join(lines)


def spawn(args: argparse.Namespace, ipc: int, k: int, *, only_loop: bool = False,
          profile: bool = False) -> tuple[dict, float]:
    """Run one case in a subprocess; (its result, its peak resident memory in MB)."""
    cmd = [sys.executable, __file__, "--case", str(ipc), str(k), "--root", args.root, "--device", args.device,
           "--net", args.net, "--seed", str(args.seed)]
    if args.epochs_now:
        cmd += ["--epochs", str(args.epochs_now)]
    if profile:
        cmd += ["--profile"]
    if only_loop:
        cmd += ["--only-loop"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"case ipc{ipc}-k{k} failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads(stdout.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def loop_only_peak(args: argparse.Namespace) -> dict:
    """The loop's peak memory alone: a process that trains one network and tests it."""
    import torch

    from dc_plugins.config import EvalConfig
    from dc_plugins.data import load_dataset, make_generator, subsample_per_class
    from dc_plugins.evaluation import evaluate_set
    from dc_plugins.synthetic import SyntheticSet

    train = load_dataset("mnist", root=args.root, image_size=32, device=args.device)
    test = load_dataset("mnist", root=args.root, train=False, image_size=32, device=args.device)
    real = subsample_per_class(train, args.ipc, make_generator(args.seed))
    syn = SyntheticSet(real.images, real.labels, "random", "mnist", args.ipc)
    evaluate_set(syn, test, config=EvalConfig(networks=1, epochs=2, net=args.net, parallel=1), seed=args.seed,
                 progress=False)
    return {"loop_only": True, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--device", default="cpu")
    p.add_argument("--net", default="convnet-w128-d3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ipc", nargs="+", type=int, default=[1, 10, 50])
    p.add_argument("--k", nargs="+", type=int, default=[1, 5, 20])
    p.add_argument("--only", nargs="+", default=None, metavar="PATTERN",
                   help="run only cases matching these shell patterns, e.g. 'ipc1-k20' 'ipc*-k1'")
    p.add_argument("--epochs", nargs="+", type=int, default=None,
                   help="epochs to run (default: the protocol's), one value or one per --ipc value; "
                        "seconds are extrapolated to the protocol's")
    p.add_argument("--quick", action="store_true", help="a smoke run: ipc 1, K 1 and 5, 3 epochs")
    p.add_argument("--profile", action="store_true", help="add torch.profiler tables of the first case with K > 1")
    p.add_argument("--case", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument("--only-loop", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        args.ipc, args.k = args.case
        args.epochs = args.epochs[0] if args.epochs else None
        result = loop_only_peak(args) if args.only_loop else run_case(args)
        print(json.dumps(result))
        return 0
    if args.quick:
        args.ipc, args.k, args.epochs = [1], [1, 5], args.epochs or [3]
    if args.epochs is not None:
        if any(e < 1 for e in args.epochs) or len(args.epochs) not in (1, len(args.ipc)):
            p.error(f"--epochs takes one value >= 1 or one per --ipc value ({len(args.ipc)}), got {args.epochs}")
        epochs_of = dict(zip(args.ipc, args.epochs * len(args.ipc) if len(args.epochs) == 1 else args.epochs))
    else:
        epochs_of = dict.fromkeys(args.ipc)
    cases = [(i, k) for i in args.ipc for k in args.k]
    if args.only:
        cases = [(i, k) for i, k in cases if any(fnmatch.fnmatch(f"ipc{i}-k{k}", pat) for pat in args.only)]
        if not cases:
            p.error(f"--only {' '.join(args.only)} matches none of the cases "
                    f"({', '.join(f'ipc{i}-k{k}' for i in args.ipc for k in args.k)})")
    from dc_plugins.io import atomic_path, write_json

    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
              "machine": machine(), "device": args.device, "net": args.net, "matmul_gflops": matmul_gflops(args.device),
              "cases": []}
    for ipc, k in cases:
        t = time.perf_counter()
        # the profile: of the first case that stacks networks
        profile = args.profile and k > 1 and not any("profile" in c for c in result["cases"])
        args.epochs_now = epochs_of[ipc]
        case, peak = spawn(args, ipc, k, profile=profile)
        _, loop_peak = spawn(args, ipc, 1, only_loop=True)
        case["peak_rss_mb"] = {"loop": loop_peak, "batched": peak}
        case["wall_seconds"] = time.perf_counter() - t
        result["cases"].append(case)
        print(f"{case['case']}: loop {case['loop']['seconds']:.1f} s, batched {case['batched']['seconds']:.1f} s "
              f"({case['epochs_run']} epochs), protocol speed-up {case['speedup']:.2f}x", flush=True)
        # after every case, so that an interrupted run keeps the cases it finished
        write_json(Path(args.out) / "eval_speed.json", result)
        with atomic_path(Path(args.out) / "eval_speed.md") as tmp:
            tmp.write_text(markdown(result) + "\n")
    print(f"wrote {args.out}/eval_speed.json and eval_speed.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
