"""Seconds per iteration of ours against the authors' original code, run alternately (A B A B ...)
on an otherwise idle machine, so that neither run is slowed by the other.

    PYTHONPATH=. python benchmarks/side_by_side.py --method dm --repo /work/authors/DatasetCondensation \\
        --rounds 2 --iterations 10 --threads 2 --out benchmarks/results/engine_cifar10_jpeg/abab-dm-ipc10.json
    PYTHONPATH=. python benchmarks/side_by_side.py --method dc --repo /work/authors/DatasetCondensation \\
        --rounds 2 --iterations 10 --threads 2 --out benchmarks/results/dc_speed/abab-dc-ipc1.json

Why not concurrently: two single-thread processes started together do not overlap evenly (the
authors' ``main_DM.py`` decodes 50,000 JPEGs with PIL before its loop, ours reads a tensor cache
in 2 s), so one runs partly alone and partly paired, and on these 2 cores a paired process
computes slower (its CPU time per iteration rises with the wall time). Alternating removes that;
the machine's drift is spread over both by the order.

Cases: ``dm``: CIFAR-10-JPEG, ipc 10, real init, 256 real images per class, DSA (the issue's
yardstick); ``dc``: MNIST-10k, ipc 1, noise init, 64 real images per class (the DC yardstick).
``--ours-set KEY=VALUE`` passes an override to ours only (e.g. ``matching.autocast=bf16``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "dm": {"authors": ["--method", "DM", "--dataset", "CIFAR10", "--ipc", "10", "--batch-real", "256"],
           "ours": ["--method", "dm", "--dataset", "imagefolder", "--ipc", "10", "--batch-real", "256",
                    "--preset", "paper", "--set", "matching.init=real"],
           "data": "cifar10-jpeg", "what": "CIFAR-10-JPEG, ipc 10, real init, 256 real per class, DSA"},
    "dc": {"authors": ["--method", "DC", "--dataset", "MNIST", "--ipc", "1", "--batch-real", "64"],
           "ours": ["--method", "dc", "--dataset", "mnist", "--ipc", "1", "--batch-real", "64",
                    "--preset", "cpu-quick"],
           "data": "", "what": "MNIST-10k, ipc 1, noise init, 64 real per class, outer loop 1"},
}


def run_authors(args, case: dict, out: Path) -> float:
    data = Path(args.data) / case["data"] if case["data"] else Path(args.data)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "authors.py"), "--repo", args.repo, "--data", str(data),
           "--iterations", str(args.iterations), "--evals", "0", "--threads", str(args.threads),
           "--out", str(out), *case["authors"]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(args))
    return json.loads(out.read_text())["seconds_per_iteration"]


def run_ours(args, case: dict, out: Path) -> tuple[float, float]:
    root = Path(args.data) / case["data"] if case["data"] else Path(args.data)
    cmd = [sys.executable, "-m", "dc_plugins", "--root", str(root), "--iterations", str(args.iterations),
           "--eval-networks", "0", "--no-progress", "--out", str(out), *case["ours"]]
    for assignment in args.ours_set:
        cmd += ["--set", assignment]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(args))
    result = json.loads((out / "result.json").read_text())
    return result["seconds_per_iteration"], result["cpu_seconds_per_iteration"]


def _env(args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=sorted(CASES), required=True)
    p.add_argument("--repo", required=True, help="a checkout of VICO-UoE/DatasetCondensation")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.rounds <= 0 or args.iterations <= 0 or args.threads <= 0:
        p.error("--rounds, --iterations and --threads must be positive")
    case = CASES[args.method]
    authors, ours, ours_cpu = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # A B in even rounds, B A in odd ones: neither side always runs first
            order = ("authors", "ours") if r % 2 == 0 else ("ours", "authors")
            for side in order:
                if side == "authors":
                    authors.append(run_authors(args, case, Path(tmp) / f"authors{r}.json"))
                else:
                    wall, cpu = run_ours(args, case, Path(tmp) / f"ours{r}")
                    ours.append(wall)
                    ours_cpu.append(cpu)
                print(f"round {r}: {side} {(authors if side == 'authors' else ours)[-1]:.3f} s/it", flush=True)
    import torch

    from dc_plugins.device import machine_info

    result = {"what": f"{args.method}: ours vs the authors' code, alternately, {case['what']}",
              "iterations_per_run": args.iterations, "rounds": args.rounds, "threads": args.threads,
              "ours_overrides": args.ours_set,
              "authors_seconds_per_iteration": authors, "ours_seconds_per_iteration": ours,
              "ours_cpu_seconds_per_iteration": ours_cpu,
              "speedup_median": statistics.median(a / o for a, o in zip(authors, ours)),
              "torch": torch.__version__, "machine": machine_info(),
              "command": "python benchmarks/side_by_side.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(out)
    print(f"ours is {result['speedup_median']:.2f}x the authors' speed (median of {args.rounds} rounds) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
