"""Run the authors' original code (VICO-UoE/DatasetCondensation: ``main.py`` for DC and DSA,
``main_DM.py`` for DM) unchanged, for side-by-side yardsticks of seconds per iteration and accuracy.

    git --git-dir=<mirror> archive --prefix=DatasetCondensation/ HEAD | tar -x -C /work/authors
    python benchmarks/authors.py --repo /work/authors/DatasetCondensation --method DM \
        --dataset CIFAR10 --data ../shared/data/cifar10-jpeg --ipc 10 --iterations 200 --evals 3 \
        --out benchmarks/results/engine_cifar10_jpeg/authors-dm-ipc10.json
    python benchmarks/authors.py --repo /work/authors/DatasetCondensation --method DC \
        --dataset MNIST --data ../shared/data --ipc 1 --batch-real 64 --iterations 100 --evals 0 \
        --out benchmarks/results/dc_speed/timing-authors-dc-ipc1.json

Only the CIFAR-10 data source is replaced: the original ``utils.get_dataset('CIFAR10', ...)`` reads
torchvision's CIFAR-10 archives (downloading them), which are not available offline, so it is
given ``torchvision.datasets.ImageFolder`` over the JPEG folders with the original transform
(``ToTensor`` + the code's own CIFAR-10 mean/std). MNIST is read by the code's own
``datasets.MNIST(data_path)`` from ``--data`` (``../shared/data`` holds MNIST-10k in torchvision's
layout, so the "MNIST" there is MNIST-10k). Everything else (the matching loops, DSA, the
evaluation) is the authors' code as published. ``--eval_mode X`` makes it evaluate once, after the
last iteration (its ``S``/``SS`` modes evaluate every 500 (DC) or 2000 (DM) iterations).
``--evals 0`` skips the evaluation (timing runs).

Seconds per iteration are timed from the first network the matching loop draws to the first
evaluation call (which, with ``--evals 0``, trains nothing); the evaluation's seconds apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True, help="a checkout of VICO-UoE/DatasetCondensation")
    p.add_argument("--method", choices=("DC", "DSA", "DM"), default="DM")
    p.add_argument("--dataset", choices=("CIFAR10", "MNIST"), default="CIFAR10",
                   help="CIFAR10 = the CIFAR-10-JPEG folders at --data; MNIST = torchvision's layout at --data")
    p.add_argument("--data", default="../shared/data/cifar10-jpeg",
                   help="CIFAR-10-JPEG root (train/, test/), or the folder holding MNIST/raw")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--evals", type=int, default=3, help="evaluation networks")
    p.add_argument("--eval-epochs", type=int, default=1000)
    p.add_argument("--batch-real", type=int, default=256)
    p.add_argument("--init", choices=("noise", "real"), default=None,
                   help="default: real for DM and DSA (the papers' settings), noise for DC")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="JSON file for the measurement")
    args = p.parse_args(argv)

    import torch
    from torchvision import datasets, transforms

    if args.threads:
        torch.set_num_threads(args.threads)
    repo, data = Path(args.repo).resolve(), Path(args.data).resolve()
    script = "main_DM" if args.method == "DM" else "main"
    needs = [repo / f"{script}.py"] + ([data / "train", data / "test"] if args.dataset == "CIFAR10"
                                         else [data / "MNIST" / "raw"])
    for need in needs:
        if not need.exists():
            raise SystemExit(f"authors: {need} not found")
    init = args.init or ("noise" if args.method == "DC" else "real")
    sys.path.insert(0, str(repo))
    import utils  # the authors' module

    original_get_dataset = utils.get_dataset

    def get_dataset(dataset, data_path):
        if dataset != "CIFAR10":
            return original_get_dataset(dataset, data_path)
        mean, std = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]  # the code's constants
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)])
        dst_train = datasets.ImageFolder(str(data / "train"), transform=transform)
        dst_test = datasets.ImageFolder(str(data / "test"), transform=transform)
        testloader = torch.utils.data.DataLoader(dst_test, batch_size=256, shuffle=False, num_workers=0)
        return 3, (32, 32), 10, dst_train.classes, mean, std, dst_train, dst_test, testloader

    utils.get_dataset = get_dataset
    import importlib

    main_mod = importlib.import_module(script)
    main_mod.get_dataset = get_dataset
    marks: dict[str, float] = {}
    accs: list[float] = []
    get_network, evaluate_synset = main_mod.get_network, main_mod.evaluate_synset

    def timed_get_network(*a, **kw):
        marks.setdefault("first_network", time.perf_counter())
        return get_network(*a, **kw)

    def timed_evaluate_synset(*a, **kw):
        marks.setdefault("first_eval", time.perf_counter())
        if args.evals == 0:  # timing run: nothing is trained
            marks["last_eval"] = marks["first_eval"]
            return None, 0.0, 0.0
        out = evaluate_synset(*a, **kw)
        accs.append(float(out[2]))
        marks["last_eval"] = time.perf_counter()
        return out

    main_mod.get_network, main_mod.evaluate_synset = timed_get_network, timed_evaluate_synset
    with tempfile.TemporaryDirectory() as save:
        data_path = save if args.dataset == "CIFAR10" else str(data)
        sys.argv = [f"{script}.py", "--dataset", args.dataset, "--model", "ConvNet", "--ipc", str(args.ipc),
                    "--eval_mode", "X", "--num_exp", "1", "--num_eval", str(max(args.evals, 1)),
                    "--epoch_eval_train", str(args.eval_epochs), "--Iteration", str(args.iterations),
                    "--batch_real", str(args.batch_real), "--init", init,
                    "--data_path", data_path, "--save_path", save]
        if args.method != "DM":
            sys.argv += ["--method", args.method]
            if args.method == "DSA":
                sys.argv += ["--dsa_strategy", "color_crop_cutout_flip_scale_rotate"]
        start = time.perf_counter()
        main_mod.main()
        total = time.perf_counter() - start
    import statistics

    result = {
        "what": f"authors' {script}.py (VICO-UoE/DatasetCondensation) on "
                f"{'CIFAR-10-JPEG' if args.dataset == 'CIFAR10' else 'MNIST-10k'}",
        "method": args.method, "ipc": args.ipc, "iterations": args.iterations, "batch_real": args.batch_real,
        "init": init, "eval_networks": args.evals, "eval_epochs": args.eval_epochs,
        "eval_augment": "dsa" if args.method != "DC" else "the code's get_daparam",
        "seconds_per_iteration": (marks["first_eval"] - marks["first_network"]) / args.iterations,
        "eval_seconds": marks["last_eval"] - marks["first_eval"], "total_seconds": total,
        "accuracies": accs, "accuracy_mean": statistics.fmean(accs) if accs else None,
        "accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps({k: result[k] for k in ("seconds_per_iteration", "accuracy_mean", "accuracy_std")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
