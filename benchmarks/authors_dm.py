"""Run the DM authors' original code (VICO-UoE/DatasetCondensation, ``main_DM.py``) unchanged on
CIFAR-10-JPEG, for a side-by-side yardstick of seconds per iteration and accuracy.

    git clone https://github.com/VICO-UoE/DatasetCondensation /tmp/DatasetCondensation
    python benchmarks/authors_dm.py --repo /tmp/DatasetCondensation \\
        --data ../shared/data/cifar10-jpeg --ipc 10 --iterations 200 --evals 3 \\
        --out benchmarks/results/engine_cifar10_jpeg/authors-dm-ipc10.json

Only the data source is replaced: the original ``utils.get_dataset('CIFAR10', ...)`` reads
torchvision's CIFAR-10 archives (downloading them), which are not available offline, so it is
given ``torchvision.datasets.ImageFolder`` over the JPEG folders with the original transform
(``ToTensor`` + the code's own CIFAR-10 mean/std). Everything else (the matching loop, DSA, the
1000-epoch evaluation with DSA) is the authors' code as published. ``--eval_mode X`` makes it
evaluate once, after the last iteration (its ``S``/``SS`` modes evaluate every 2000 iterations,
i.e. only at iteration 0 for a 200-iteration run).

Seconds per iteration are timed from the first network the matching loop draws to the first
evaluation call; the evaluation's seconds are reported apart.
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
    p.add_argument("--data", default="../shared/data/cifar10-jpeg", help="CIFAR-10-JPEG root (train/, test/)")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--evals", type=int, default=3, help="evaluation networks")
    p.add_argument("--eval-epochs", type=int, default=1000)
    p.add_argument("--batch-real", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="JSON file for the measurement")
    args = p.parse_args(argv)

    import torch
    from torchvision import datasets, transforms

    if args.threads:
        torch.set_num_threads(args.threads)
    repo, data = Path(args.repo).resolve(), Path(args.data).resolve()
    for need in (repo / "main_DM.py", data / "train", data / "test"):
        if not need.exists():
            raise SystemExit(f"authors_dm: {need} not found")
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
    import main_DM

    main_DM.get_dataset = get_dataset
    marks: dict[str, float] = {}
    accs: list[float] = []
    get_network, evaluate_synset = main_DM.get_network, main_DM.evaluate_synset

    def timed_get_network(*a, **kw):
        marks.setdefault("first_network", time.perf_counter())
        return get_network(*a, **kw)

    def timed_evaluate_synset(*a, **kw):
        marks.setdefault("first_eval", time.perf_counter())
        out = evaluate_synset(*a, **kw)
        accs.append(float(out[2]))
        marks["last_eval"] = time.perf_counter()
        return out

    main_DM.get_network, main_DM.evaluate_synset = timed_get_network, timed_evaluate_synset
    with tempfile.TemporaryDirectory() as save:
        sys.argv = ["main_DM.py", "--dataset", "CIFAR10", "--model", "ConvNet", "--ipc", str(args.ipc),
                    "--eval_mode", "X", "--num_exp", "1", "--num_eval", str(args.evals),
                    "--epoch_eval_train", str(args.eval_epochs), "--Iteration", str(args.iterations),
                    "--batch_real", str(args.batch_real), "--init", "real",
                    "--data_path", save, "--save_path", save]
        start = time.perf_counter()
        main_DM.main()
        total = time.perf_counter() - start
    import statistics

    result = {
        "what": "authors' main_DM.py (VICO-UoE/DatasetCondensation) on CIFAR-10-JPEG",
        "ipc": args.ipc, "iterations": args.iterations, "batch_real": args.batch_real, "init": "real",
        "eval_networks": args.evals, "eval_epochs": args.eval_epochs, "eval_augment": "dsa",
        "seconds_per_iteration": (marks["first_eval"] - marks["first_network"]) / args.iterations,
        "eval_seconds": marks["last_eval"] - marks["first_eval"], "total_seconds": total,
        "accuracies": accs, "accuracy_mean": statistics.fmean(accs),
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
