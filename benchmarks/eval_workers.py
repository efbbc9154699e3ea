"""Evaluation in worker processes (``eval.workers = 2``) against one process, alternately (A B A B)
in one run on an otherwise idle machine.

    PYTHONPATH=. python benchmarks/eval_workers.py --out benchmarks/results/eval_speed/workers.json

The sets are the demo's: real scikit-learn digit images (ships with the dependencies, 8 px
upsampled to 16, as ``make demo`` runs them), ``ipc`` per class, 3 evaluation networks of the
demo's ConvNet (w128-d3 instance norm), without augmentation (how the demo evaluates random,
herding and DC) and with DSA (DM). ``--epochs`` per network (the demo: 1,000 at ipc 1 and 300
at ipc 10; fewer here, every epoch costing the same, so the workers' fixed cost of starting
processes weighs *more* here than in the demo: the ratio is a lower bound). Every timing is
``evaluate_set``'s wall time, process start-up included; the accuracies of both ways are written
too (the same networks, up to the rounding of another thread count).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ipc", nargs="+", type=int, default=[1, 10])
    p.add_argument("--augment", nargs="+", default=["none", "dsa"])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--networks", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    from benchmarks.eval_speed import machine
    from dc_plugins.config import EvalConfig
    from dc_plugins.data import load_dataset
    from dc_plugins.evaluation import evaluate_set
    from dc_plugins.io import write_json
    from dc_plugins.synthetic import SyntheticSet

    train = load_dataset("digits", "data", train=True, image_size=16)
    test = load_dataset("digits", "data", train=False, image_size=16)
    cases = []
    for ipc in args.ipc:
        idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:ipc] for c in range(train.num_classes)])
        syn = SyntheticSet(train.images[idx], train.labels[idx], "random", "digits", ipc)
        for augment in args.augment:
            base = EvalConfig(networks=args.networks, epochs=args.epochs, net="convnet", augment=augment)
            seconds: dict[str, list[float]] = {"one process": [], f"{args.workers} workers": []}
            accs: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for label, cfg in (("one process", base),
                                   (f"{args.workers} workers", dataclasses.replace(base, workers=args.workers))):
                    start = time.perf_counter()
                    r = evaluate_set(syn, test, config=cfg, seed=0, progress=False)
                    seconds[label].append(time.perf_counter() - start)
                    accs[label] = r.accuracies
            one, many = (statistics.median(v) for v in seconds.values())
            case = {"ipc": ipc, "augment": augment, "seconds": seconds, "accuracies": accs,
                    "speedup": one / many}
            print(f"ipc {ipc} augment {augment}: one process {one:.1f} s, {args.workers} workers {many:.1f} s "
                  f"-> {one / many:.2f}x", flush=True)
            cases.append(case)
    write_json(Path(args.out), {"machine": machine(), "epochs": args.epochs, "networks": args.networks,
                                "workers": args.workers, "rounds": args.rounds, "data": "scikit-learn digits, 16 px",
                                "net": "convnet (w128-d3, instance norm)", "cases": cases})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
