"""The continual-learning table: mean ± std over seeds per (memory, distillation), as CSV,
Markdown and a plot. Input: the run results of :func:`strategies.continual.run_continual`
(one dict per run, ``stages`` with ``mean_seen`` and ``stream_forgetting``)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from dc_plugins.io import atomic_path

__all__ = ["summarise", "table_markdown", "paired_differences", "paired_markdown", "write_outputs", "plot"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def summarise(results: list[dict]) -> list[dict]:
    """One row per (memory, distillation): mean and std over seeds of the seen-average accuracy
    per stage (%), and of Avalanche's stream forgetting after the last stage (points)."""
    rows = []
    keys = sorted({(r["memory"], r["distillation"]) for r in results}, key=lambda k: (k[1], k[0]))
    for memory, distill in keys:
        runs = [r for r in results if r["memory"] == memory and r["distillation"] == distill]
        n_stages = min(len(r["stages"]) for r in runs)
        row = {"memory": memory, "distillation": distill, "seeds": len(runs)}
        for s in range(n_stages):
            row[f"stage{s + 1}_mean"], row[f"stage{s + 1}_std"] = _mean_std(
                [100 * r["stages"][s]["mean_seen"] for r in runs])
        if n_stages and all("stream_forgetting" in r["stages"][n_stages - 1] for r in runs):
            row["forgetting_mean"], row["forgetting_std"] = _mean_std(
                [100 * r["stages"][n_stages - 1]["stream_forgetting"] for r in runs])
        rows.append(row)
    return rows


def _stages(row: dict) -> list[int]:
    return sorted(int(k[5:-5]) for k in row if k.startswith("stage") and k.endswith("_mean"))


def table_markdown(rows: list[dict]) -> str:
    n = max(s for r in rows for s in _stages(r))
    forgetting = any("forgetting_mean" in r for r in rows)
    head = ("| memory | distillation | seeds | " + " | ".join(f"stage {s}" for s in range(1, n + 1))
            + (" | forgetting |" if forgetting else " |"))
    lines = [head, "|---|---|---|" + "---|" * (n + forgetting)]
    for r in rows:
        cells = [f"{r[f'stage{s}_mean']:.2f} ± {r[f'stage{s}_std']:.2f}" if f"stage{s}_mean" in r else ""
                 for s in range(1, n + 1)]
        if forgetting:
            cells.append(f"{r['forgetting_mean']:.2f} ± {r['forgetting_std']:.2f}" if "forgetting_mean" in r else "")
        lines.append(f"| {r['memory']} | {'yes' if r['distillation'] else 'no'} | {r['seeds']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(results: list[dict], baseline: str | None = None) -> list[dict]:
    """Each memory's last-stage seen-average minus the baseline memory's (default: the herding
    memory), seed by seed, with the same distillation setting: runs of one seed share the class
    order and data order, so the difference removes the seed's own difficulty (the unpaired
    spread over seeds is mostly that). One row per (memory, distillation): the per-seed
    differences (points), their mean and std. Empty when there is no baseline run."""
    memories = sorted({r["memory"] for r in results})
    if baseline is None:
        baseline = next((m for m in memories if "herding" in m), None)
    if baseline is None or baseline not in memories:
        return []
    last = {(r["memory"], r["distillation"], r["seed"]): 100 * r["stages"][-1]["mean_seen"] for r in results}
    rows = []
    for distill in sorted({r["distillation"] for r in results}):
        for memory in memories:
            if memory == baseline:
                continue
            seeds = sorted(s for (m, d, s) in last if m == memory and d == distill
                           and (baseline, distill, s) in last)
            if not seeds:
                continue
            diffs = [last[(memory, distill, s)] - last[(baseline, distill, s)] for s in seeds]
            mean, std = _mean_std(diffs)
            rows.append({"memory": memory, "baseline": baseline, "distillation": distill, "seeds": seeds,
                         "differences": diffs, "mean": mean, "std": std,
                         "ahead_on_every_seed": all(d > 0 for d in diffs)})
    return rows


def paired_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = [f"Last stage against {rows[0]['baseline']}, paired by seed (points):", "",
             "| memory | distillation | seeds | per seed | mean ± std |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['memory']} | {'yes' if r['distillation'] else 'no'} | {len(r['seeds'])} | "
                     + ", ".join(f"{d:+.2f}" for d in r["differences"]) + f" | {r['mean']:+.2f} ± {r['std']:.2f} |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, results: list[dict], rows: list[dict]) -> None:
    """``results.csv`` (every run and stage), ``table.csv``, ``table.md`` and ``accuracy.png``."""
    out = Path(out)
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["memory", "distillation", "seed", "stage", "mean_seen", "accuracies", "stream_forgetting",
                    "forgetting", "seconds", "config_hash"])
        for r in results:
            for s in r["stages"]:
                w.writerow([r["memory"], r["distillation"], r["seed"], s["stage"], f"{s['mean_seen']:.6f}",
                            " ".join(f"{a:.6f}" for a in s["accuracies"]),
                            f"{s['stream_forgetting']:.6f}" if "stream_forgetting" in s else "",
                            " ".join(f"{a:.6f}" for a in s.get("forgetting", [])), s["seconds"],
                            r.get("config_hash", "")])
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(out / "table.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    paired = paired_markdown(paired_differences(results))
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table_markdown(rows) + ("\n" + paired if paired else ""))
    plot(out / "accuracy.png", rows)


def plot(path: Path, rows: list[dict]) -> None:
    """Seen-average accuracy per stage, one line per (memory, distillation), std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        stages = _stages(r)
        ax.errorbar(stages, [r[f"stage{s}_mean"] for s in stages], yerr=[r[f"stage{s}_std"] for s in stages],
                    marker="o", capsize=3, linestyle="-" if r["distillation"] else "--",
                    label=f"{r['memory']} {'+ KD' if r['distillation'] else '(no KD)'}")
    ax.set_xlabel("stage (experiences seen)")
    ax.set_ylabel("accuracy on test sets seen so far (%)")
    ax.set_xticks(sorted({s for r in rows for s in _stages(r)}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
