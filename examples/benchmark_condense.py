"""Benchmark every method of the engine on real data and print the table for BENCHMARKS.md.

    python examples/benchmark_condense.py --root ../shared/data --datasets mnist usps \
        --ipc 1 10 --preset cpu-quick --eval-networks 3 --out runs/bench

Each (dataset, ipc, method) run writes ``OUT/<dataset>/ipc<k>/<method>/result.json``; finished
runs are skipped, so an interrupted benchmark continues where it stopped. With ``--results DIR``
(``benchmarks/results/<name>``, committed) each finished run is also kept there as one small JSON,
and a run found there with the same configuration is not rerun: the benchmark continues on a fresh
checkout, where ``runs/`` is gone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dc_plugins.config import METHODS, parse_assignment
from dc_plugins.suite import Suite


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--datasets", nargs="+", default=["mnist", "usps"])
    p.add_argument("--ipc", nargs="+", type=int, default=[1, 10])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--preset", default="cpu-quick")
    p.add_argument("--eval-networks", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="keep finished runs' results here (commit it) and continue from it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. --set iterations=200 (repeatable)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (1 lets two benchmarks share a 2-core machine without OpenMP stalls)")
    args = p.parse_args(argv)
    from dc_plugins.device import tune_malloc

    tune_malloc()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    overrides: dict = {}
    for item in args.overrides:
        _merge(overrides, parse_assignment(item))
    suite = Suite(args.datasets, args.ipc, args.methods, out=args.out, root=args.root, preset=args.preset,
                  seed=args.seed, device=args.device, eval_networks=args.eval_networks, overrides=overrides,
                  results=args.results)
    suite.write_tables(suite.run(log=lambda s: print(s, flush=True)))
    # the committed table holds every kept run, earlier invocations' too
    print((Path(args.results or args.out) / "table.md").read_text(), end="")
    return 0


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


if __name__ == "__main__":
    raise SystemExit(main())
