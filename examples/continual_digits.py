"""Herding vs condensed rehearsal memory in continual learning on digit streams (DC paper, Sec. 4).

Each run trains one learner through a stream of digit datasets (SVHN -> MNIST -> USPS, or with
``--offline`` MNIST-10k -> USPS -> scikit-learn digits) with End-to-End-style replay: the memory
(Avalanche's herding buffer, or condensed images from ``CondensedReplayPlugin``), with or
without knowledge distillation (``LwFPlugin``), over several seeds. After each stage the learner
is tested on the test sets of all domains seen so far; the table reports the mean of those
accuracies, mean ± std over seeds, as the paper does.

    python examples/continual_digits.py --config continual_digits --offline
    python examples/continual_digits.py --config continual_digits --root data --download

Outputs under ``out``: ``table.md``, ``table.csv`` (mean/std per stage), ``results.csv`` (every
run and stage), ``accuracy.png``, ``config.json`` and one folder per run with ``result.json``
and Avalanche's CSV logs. Finished runs are skipped when the command is repeated (resume).

Configuration: the YAML file fills :class:`ContinualConfig` (sections ``train`` =
:class:`strategies.E2EConfig`, ``condense`` = :class:`CondensedReplayConfig`, and ``offline``
= overrides applied with ``--offline``); ``--set key=value`` changes any field
(``--set train.epochs=2 --set condense.iterations=5``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dc_plugins.config import METHODS, parse_assignment, read_yaml_mapping  # noqa: E402
from dc_plugins.device import resolve_device  # noqa: E402
from dc_plugins.io import atomic_path, write_json  # noqa: E402

STREAMS = ("svhn-mnist-usps", "mnist-usps-digits", "digits")
BASELINES = ("none", "learner-herding")


@dataclass
class ContinualConfig:
    """Everything one invocation runs. ``memories`` entries: ``none`` (no replay), ``herding``
    (Avalanche's ParametricBuffer + HerdingSelectionStrategy), or a method of the condensed
    memory (``dc``, ``dsa``, ``dm``, ``random``, ``kcenter``, ...)."""

    stream: str = "svhn-mnist-usps"
    scenario: str = "class"
    root: str = "data"
    download: bool = False
    image_size: int = 32
    channels: int = 3
    max_train_per_class: int | None = None
    digits_experiences: int = 5
    memories: list[str] = field(default_factory=lambda: ["learner-herding", "dc"])
    distillation: list[bool] = field(default_factory=lambda: [False, True])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    net: str = "convnet-w128-d3-instance-relu-avg"
    device: str = "auto"
    threads: int | None = None
    out: str = "runs/continual_digits"
    train: Any = None       # strategies.E2EConfig
    condense: Any = None    # dc_plugins.avalanche.CondensedReplayConfig

    def validate(self) -> "ContinualConfig":
        if self.stream not in STREAMS:
            raise ValueError(f"unknown stream {self.stream!r}; allowed: {', '.join(STREAMS)}")
        allowed = BASELINES + METHODS
        bad = [m for m in self.memories if m not in allowed]
        if bad or not self.memories:
            raise ValueError(f"memories {bad or self.memories!r} not allowed; each must be one of {', '.join(allowed)}")
        if not self.seeds or not self.distillation:
            raise ValueError("seeds and distillation need at least one value each")
        return self


def fill(cfg: ContinualConfig, values: dict) -> ContinualConfig:
    """Apply a (nested) mapping to the config; unknown keys are an error naming the allowed ones."""
    from dc_plugins.config import apply_overrides

    # "offline" is a section applied by --offline; the rest are fields, coerced to their types
    apply_overrides(cfg, {k: v for k, v in values.items() if k != "offline"})
    cfg.train, cfg.condense = cfg.train.replace(), cfg.condense.replace()  # re-validate the sections
    return cfg


def load_config(path: str | None, *, offline: bool = False, sets: list[str] = ()) -> ContinualConfig:
    from dc_plugins.avalanche import CondensedReplayConfig
    from strategies import E2EConfig

    cfg = ContinualConfig(train=E2EConfig(), condense=CondensedReplayConfig())
    data = read_yaml_mapping(path) if path else {}
    fill(cfg, data)
    if offline:
        fill(cfg, {"stream": "mnist-usps-digits", "image_size": 28, "channels": 1})
        fill(cfg, data.get("offline") or {})
    for item in sets:
        fill(cfg, parse_assignment(item))
    return cfg.validate()


# -- building blocks ------------------------------------------------------------------------------

def build_stream(cfg: ContinualConfig):
    from dc_plugins.avalanche import streams

    if cfg.stream == "digits":
        return streams.sklearn_digits_stream(cfg.digits_experiences, scenario=cfg.scenario,
                                             image_size=cfg.image_size, channels=cfg.channels)
    domains = streams.PAPER_DOMAINS if cfg.stream == "svhn-mnist-usps" else streams.OFFLINE_DOMAINS
    return streams.digit_stream(cfg.root, scenario=cfg.scenario, download=cfg.download and cfg.stream != "mnist-usps-digits",
                                image_size=cfg.image_size, channels=cfg.channels, domains=domains,
                                max_train_per_class=cfg.max_train_per_class)


def num_outputs(benchmark, scenario: str) -> int:
    if scenario == "task":
        return max(len(e.classes_in_this_experience) for e in benchmark.train_stream)
    return int(benchmark.n_classes)


def run_name(memory: str, distill: bool, seed: int) -> str:
    return f"{memory}-{'kd' if distill else 'nokd'}-s{seed}"


def run_one(cfg: ContinualConfig, benchmark, memory: str, distill: bool, seed: int, device: torch.device,
            out: Path, progress: bool) -> dict:
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.logging import CSVLogger, TextLogger
    from avalanche.training.plugins import EvaluationPlugin

    from dc_plugins.data import make_generator
    from strategies import make_e2e_strategy
    from strategies.models import make_learner

    run_dir = out / "runs" / run_name(memory, distill, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    x0 = benchmark.train_stream[0].dataset[0][0]
    model = make_learner(cfg.net, channels=x0.shape[0], image_size=x0.shape[-1],
                         num_classes=num_outputs(benchmark, cfg.scenario), multi_head=cfg.scenario == "task",
                         generator=make_generator(seed))
    train = cfg.train.replace(memory=memory if memory in BASELINES else "condensed", distillation=distill,
                              balanced_finetuning=cfg.train.balanced_finetuning and memory != "none")
    condensed = cfg.condense.replace(method=memory if memory not in BASELINES else cfg.condense.method,
                                     seed=seed, progress=progress,
                                     cache_dir=cfg.condense.cache_dir or str(out / "condensed-cache"))
    log_file = open(run_dir / "log.txt", "w")
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loss_metrics(stream=True),
                                 loggers=[TextLogger(log_file), CSVLogger(str(run_dir / "avalanche"))])
    strategy = make_e2e_strategy(model, train, condensed=condensed, device=device, evaluator=evaluator, seed=seed)
    stages, start = [], time.perf_counter()
    try:
        for i, exp in enumerate(benchmark.train_stream):
            t0 = time.perf_counter()
            strategy.train(exp)
            metrics = strategy.eval(benchmark.test_stream[:i + 1])
            accs = [_exp_accuracy(metrics, j) for j in range(i + 1)]
            stages.append({"stage": i + 1, "accuracies": accs, "mean_seen": statistics.fmean(accs),
                           "seconds": round(time.perf_counter() - t0, 2)})
            print(f"  {run_name(memory, distill, seed)} stage {i + 1}: seen-average {100 * stages[-1]['mean_seen']:.2f} % "
                  f"(per domain {', '.join(f'{100 * a:.1f}' for a in accs)}) in {stages[-1]['seconds']:.0f} s", flush=True)
    finally:
        log_file.close()
    replay = next((p for p in strategy.plugins if hasattr(p, "storage_policy")), None)
    history = getattr(getattr(replay, "storage_policy", None), "history", [])
    result = {"memory": memory, "distillation": distill, "seed": seed, "stages": stages,
              "seconds": round(time.perf_counter() - start, 1),
              "memory_size": len(replay.storage_policy.buffer) if replay else 0,
              "condensation": history}
    write_json(run_dir / "result.json", result)
    return result


def _exp_accuracy(metrics: dict, j: int) -> float:
    suffix = f"/Exp{j:03d}"
    hits = [v for k, v in metrics.items() if k.startswith("Top1_Acc_Exp/eval_phase/test_stream/") and k.endswith(suffix)]
    if len(hits) != 1:
        raise RuntimeError(f"expected one accuracy for test experience {j}, found {len(hits)}")
    return float(hits[0])


# -- the table --------------------------------------------------------------------------------------

def summarise(results: list[dict]) -> list[dict]:
    """One row per (memory, distillation): mean and std over seeds of the seen-average per stage."""
    rows = []
    keys = sorted({(r["memory"], r["distillation"]) for r in results}, key=lambda k: (k[1], k[0]))
    for memory, distill in keys:
        runs = [r for r in results if r["memory"] == memory and r["distillation"] == distill]
        n_stages = min(len(r["stages"]) for r in runs)
        row = {"memory": memory, "distillation": distill, "seeds": len(runs)}
        for s in range(n_stages):
            vals = [100 * r["stages"][s]["mean_seen"] for r in runs]
            row[f"stage{s + 1}_mean"] = statistics.fmean(vals)
            row[f"stage{s + 1}_std"] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        rows.append(row)
    return rows


def table_markdown(rows: list[dict]) -> str:
    n = max(int(k[5:-5]) for r in rows for k in r if k.startswith("stage") and k.endswith("_mean"))
    head = "| memory | distillation | seeds | " + " | ".join(f"stage {s}" for s in range(1, n + 1)) + " |"
    sep = "|---|---|---|" + "---|" * n
    lines = [head, sep]
    for r in rows:
        cells = [f"{r[f'stage{s}_mean']:.2f} ± {r[f'stage{s}_std']:.2f}" if f"stage{s}_mean" in r else ""
                 for s in range(1, n + 1)]
        lines.append(f"| {r['memory']} | {'yes' if r['distillation'] else 'no'} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, results: list[dict], rows: list[dict]) -> None:
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["memory", "distillation", "seed", "stage", "mean_seen", "accuracies", "seconds"])
        for r in results:
            for s in r["stages"]:
                w.writerow([r["memory"], r["distillation"], r["seed"], s["stage"], f"{s['mean_seen']:.6f}",
                            " ".join(f"{a:.6f}" for a in s["accuracies"]), s["seconds"]])
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(out / "table.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table_markdown(rows))
    plot(out / "accuracy.png", rows)


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        stages = sorted(int(k[5:-5]) for k in r if k.startswith("stage") and k.endswith("_mean"))
        means = [r[f"stage{s}_mean"] for s in stages]
        stds = [r[f"stage{s}_std"] for s in stages]
        ax.errorbar(stages, means, yerr=stds, marker="o", capsize=3,
                    linestyle="-" if r["distillation"] else "--",
                    label=f"{r['memory']} {'+ KD' if r['distillation'] else '(no KD)'}")
    ax.set_xlabel("stage (domains seen)")
    ax.set_ylabel("accuracy on test sets seen so far (%)")
    ax.set_xticks(sorted({int(k[5:-5]) for r in rows for k in r if k.endswith("_mean")}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file or packaged config name (default shipped: continual_digits)")
    p.add_argument("--offline", action="store_true",
                   help="MNIST-10k -> USPS -> scikit-learn digits (no internet), plus the YAML's offline section")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default from the config)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--device", help="cpu, cuda, auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no condensation progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    sets = list(args.set)
    if args.seeds:
        sets.append(f"seeds={args.seeds}")
    if args.out:
        sets.append(f"out={args.out}")
    if args.device:
        sets.append(f"device={args.device}")
    cfg = load_config(args.config, offline=args.offline, sets=sets)
    resolved = dataclasses.asdict(cfg)
    if args.print_config:
        print(yaml.safe_dump(resolved, sort_keys=False))
        return []
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    warnings.filterwarnings("ignore", message=".*QP solver.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", resolved)
    benchmark = build_stream(cfg)
    print(f"stream {cfg.stream} ({cfg.scenario}-incremental): "
          f"{[len(e.dataset) for e in benchmark.train_stream]} training images per experience, "
          f"{[len(e.dataset) for e in benchmark.test_stream]} test images; device {device}", flush=True)
    results = []
    for seed in cfg.seeds:
        for distill in cfg.distillation:
            for memory in cfg.memories:
                done = out / "runs" / run_name(memory, distill, seed) / "result.json"
                if done.is_file():
                    results.append(json.loads(done.read_text()))
                    print(f"  {run_name(memory, distill, seed)}: done earlier, reusing {done}", flush=True)
                    continue
                results.append(run_one(cfg, benchmark, memory, distill, seed, device, out,
                                       progress=not args.no_progress))
                rows = summarise(results)
                write_outputs(out, results, rows)
    rows = summarise(results)
    write_outputs(out, results, rows)
    print("\nAccuracy (%) after each stage, averaged over the test sets seen so far; mean ± std over seeds")
    print(table_markdown(rows))
    print(f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'results.csv'}, {out / 'accuracy.png'}")
    return rows


if __name__ == "__main__":
    main()
