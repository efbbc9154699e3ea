"""How well a proxy ranks architectures: the DC paper's NAS table.

For each proxy: Spearman rank correlation (``scipy.stats.spearmanr``) between its validation
accuracies and the reference's (the whole training set), over all architectures finished under
both and over the top-k by reference accuracy; the reference accuracy of the architecture the
proxy ranks first; training time; storage. ``k`` is an integer or a percentage of the
architectures (``"5%"``, rounded up).

The cost axis (:func:`proxy_compute`): each proxy's compute is its build time plus the training
(and validation) seconds of all its trials, on the device its records name (``cpu``, ``cuda``),
so that a reader compares the Spearman columns per unit of compute; and, for every set proxy,
the budget at which the early-stopping baseline (the whole training part, cut to a step budget)
would cost the same (:func:`equal_compute_early_stopping`).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr

from dc_plugins.io import atomic_path

__all__ = ["spearman", "parse_k", "check_top_k", "top_k", "score_proxy", "score_runs", "format_table",
           "repeat_agreement", "format_agreement", "top_k_choices", "format_choices", "format_report",
           "scatter_plot", "proxy_compute", "equal_compute_early_stopping", "training_spread",
           "format_training_spread", "margins", "format_margins", "rank_shifts", "format_rank_shifts",
           "SCORE_FIELDS"]

SCORE_FIELDS = ("proxy", "n", "spearman_all", "spearman_top", "top_k", "best_arch_by_proxy",
                "best_arch_reference_accuracy", "best_reference_accuracy", "best_arch_proxy_accuracy",
                "train_minutes", "build_minutes", "compute_minutes", "compute_device", "compute_fraction",
                "early_stopping_equal_compute", "storage_images", "storage_bytes", "failed")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (ties get average ranks); NaN when either side is constant or n < 2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"spearman needs equal lengths, got {x.shape[0]} and {y.shape[0]}")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def parse_k(spec: str | int, n: int) -> int:
    """``"10"`` -> 10, ``"5%"`` -> ceil(0.05 n); at least 2 and at most ``n``, else ``ValueError``."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            frac = float(text[:-1]) / 100
            if not 0 < frac <= 1:
                raise ValueError
            k = max(2, math.ceil(frac * n - 1e-9))
        else:
            k = int(text)
    except ValueError:
        raise ValueError(f"top-k must be an integer or a percentage like '5%', got {spec!r}") from None
    if k < 2:
        raise ValueError(f"top-k must be at least 2 (a rank correlation needs two architectures), got {spec!r}")
    if k > n:
        raise ValueError(f"top-k {spec!r} asks for {k} architectures, but only {n} finished under both the "
                         f"proxy and the reference; lower score.top_k")
    return k


def check_top_k(specs: Sequence[str | int], n: int) -> list[int]:
    return [parse_k(s, n) for s in specs]


def top_k(reference: Mapping[str, float], k: int) -> list[str]:
    """The ``k`` architectures with the highest reference accuracy (ties: arch name order)."""
    if k > len(reference):
        raise ValueError(f"top-k {k} is larger than the {len(reference)} finished architectures")
    return sorted(reference, key=lambda a: (-reference[a], a))[:k]


def score_proxy(proxy: Mapping[str, float], reference: Mapping[str, float],
                ks: Sequence[str | int] = ("10", "30", "5%")) -> dict:
    """Scores of one proxy (accuracies by arch) against the reference (accuracies by arch)."""
    common = sorted(set(proxy) & set(reference))
    if len(common) < 2:
        raise ValueError(f"only {len(common)} architecture(s) finished under both the proxy and the reference; "
                         f"need at least 2 to rank")
    ref = {a: reference[a] for a in common}
    row = {"n": len(common),
           "spearman_all": spearman([proxy[a] for a in common], [ref[a] for a in common]),
           "spearman_top": {}, "top_k": {}}
    for spec in ks:
        k = parse_k(spec, len(common))
        top = top_k(ref, k)
        row["spearman_top"][str(spec)] = spearman([proxy[a] for a in top], [ref[a] for a in top])
        row["top_k"][str(spec)] = k
        row.setdefault("reference_spread", {})[str(spec)] = ref[top[0]] - ref[top[-1]]  # best minus k-th
    best = sorted(common, key=lambda a: (-proxy[a], a))[0]
    row.update(best_arch_by_proxy=best, best_arch_reference_accuracy=ref[best],
               best_arch_proxy_accuracy=proxy[best], best_reference_accuracy=max(ref.values()))
    return row


def proxy_compute(run) -> dict:
    """The compute of one proxy run (``nas.experiment.ProxyRun``) from its recorded times: build
    seconds (condensation or selection, once for every architecture) plus every trial's seconds
    (training and validation, all ``train.repeats``), in minutes, and the device(s) they ran on
    (``"cpu"``, ``"cuda"``, ``"cpu+cuda"``; ``"?"`` for records that do not say)."""
    train = sum(r.seconds for r in run.records.values())
    devices = {getattr(r, "device", "") or "?" for r in run.records.values() if r.seconds}
    build_device = getattr(run.proxy, "build_device", "")
    if run.proxy.build_seconds > 1 and build_device:
        devices.add(build_device)
    known = sorted(d for d in devices if d != "?")
    device = "+".join(known) if known else ("?" if devices else "")
    return {"build_minutes": run.proxy.build_seconds / 60, "train_minutes": train / 60,
            "compute_minutes": (run.proxy.build_seconds + train) / 60, "compute_device": device}


def equal_compute_early_stopping(run, early, archs: Sequence[str] | None = None) -> dict | None:
    """The early-stopping budget that costs what ``run`` cost, from the recorded times.

    Over the architectures finished under both (or ``archs``): ``run``'s compute C (its build plus
    its trials' seconds) against the early-stopping run's measured training seconds per image
    seen, summed over the architectures (R), and its validation seconds (V, paid at any budget):
    each architecture could have trained on ``(C - V) / R`` images of the whole training part.
    Returned as SGD ``steps``, as ``epochs`` on ``run``'s set size (the ``train.epochs`` that gives
    early stopping this budget, as its steps are counted), and as the multiple of the budget
    early stopping ran with (``ratio``). None when either run has no usable timed trial."""
    common = [a for a in (archs if archs is not None else run.finished) if a in run.finished and a in early.finished]
    es = [early.records[a] for a in common if early.records[a].images_seen > 0 and early.records[a].steps > 0]
    if not es or len(es) != len(common):
        return None
    mine = [run.records[a] for a in common]
    cost = run.proxy.build_seconds + sum(r.seconds for r in mine)
    per_image = sum((r.seconds - getattr(r, "eval_seconds", 0.0)) / r.images_seen for r in es)
    validation = sum(getattr(r, "eval_seconds", 0.0) for r in es)
    if per_image <= 0 or cost <= validation:
        return None
    images = (cost - validation) / per_image
    images_per_step = sum(r.images_seen for r in es) / sum(r.steps for r in es)
    ran = sum(r.images_seen for r in es) / len(es)
    return {"steps": images / images_per_step, "epochs": images / run.proxy.num_images, "ratio": images / ran,
            "n": len(common)}


def score_runs(runs: Mapping, reference: str = "whole", ks: Sequence[str | int] = ("10", "30", "5%"),
               early_stopping: str = "early-stopping") -> list[dict]:
    """One row per proxy run (``nas.experiment.ProxyRun``): the paper's NAS table columns, and
    the cost axis (:func:`proxy_compute`; ``compute_fraction``: of the reference's compute;
    ``early_stopping_equal_compute``: :func:`equal_compute_early_stopping` for each set proxy when
    an ``early_stopping`` run is there)."""
    if reference not in runs:
        raise ValueError(f"reference proxy {reference!r} was not run; runs: {', '.join(runs)}")
    ref = runs[reference].finished
    ref_compute = proxy_compute(runs[reference])["compute_minutes"]
    early = runs.get(early_stopping)
    rows = []
    for label, run in runs.items():
        row = {"proxy": label, **score_proxy(run.finished, ref, ks)}
        compute = proxy_compute(run)
        row.update(compute, compute_fraction=compute["compute_minutes"] / ref_compute if ref_compute else None,
                   storage_images=run.proxy.num_images, storage_bytes=run.proxy.storage_bytes,
                   failed=len(run.failed))
        whole_kind = getattr(run.proxy, "kind", label) in ("whole", "early-stopping")
        row["early_stopping_equal_compute"] = (equal_compute_early_stopping(run, early)
                                               if early is not None and not whole_kind else None)
        rows.append(row)
    return rows


def repeat_agreement(runs: Mapping, ks: Sequence[str | int] = ("10", "30", "5%")) -> list[dict]:
    """How far a run's ranking reproduces: for every run trained with ``train.repeats`` >= 2, the
    mean of its second half of trainings scored against the mean of its first half (top-k by the
    first). With 2 trainings that is seed ``seed + 1`` against ``seed``; with 4, the mean of seeds
    ``seed + 2``, ``seed + 3`` against that of ``seed``, ``seed + 1``: two independent rankings of
    2 trainings each, the noise of a 2-training reference.

    For the reference run this is the ceiling any proxy can reach against a reference with that
    noise; for a proxy it separates its training noise from its bias. Runs with one training per
    architecture get no row; ``half`` is the number of trainings in each half."""
    rows = []
    for label, run in runs.items():
        lists = {a: r.accuracies for a, r in run.records.items() if r.status == "finished" and len(r.accuracies) >= 2}
        if len(lists) < 2:
            continue
        half = min(len(acc) for acc in lists.values()) // 2
        first = {a: float(np.mean(acc[:half])) for a, acc in lists.items()}
        second = {a: float(np.mean(acc[half:2 * half])) for a, acc in lists.items()}
        row = score_proxy(second, first, ks)
        row["proxy"] = label
        row["half"] = half
        row["mean_abs_diff"] = float(np.mean([abs(second[a] - first[a]) for a in lists]))
        rows.append(row)
    return rows


def training_spread(runs: Mapping, reference: str = "whole", ks: Sequence[str | int] = ("10", "30", "5%")) -> list[dict]:
    """Each training of a proxy scored on its own against the reference (the mean of the
    reference's trainings): for every run other than the reference trained with ``train.repeats``
    >= 2, its top-k and all-architecture Spearman per training seed and their range (max - min).

    The range is the proxy's own seed-to-seed spread in the units of the proxy table: how far its
    Spearman moves when only the training seed changes (the proxy set itself is one build). A gap
    between two proxies smaller than it is not a difference the grid can tell (:func:`margins`)."""
    ref = runs[reference].finished
    rows = []
    for label, run in runs.items():
        if label == reference:
            continue
        lists = {a: r.accuracies for a, r in run.records.items() if r.status == "finished" and a in ref}
        n = min((len(acc) for acc in lists.values()), default=0)
        if n < 2 or len(lists) < 2:
            continue
        per = [score_proxy({a: acc[i] for a, acc in lists.items()}, ref, ks) for i in range(n)]
        top = {k: [p["spearman_top"][k] for p in per] for k in per[0]["spearman_top"]}
        every = [p["spearman_all"] for p in per]
        rows.append({"proxy": label, "kind": getattr(getattr(run, "proxy", None), "kind", label), "trainings": n,
                     "n": per[0]["n"], "top_k": per[0]["top_k"], "spearman_top": top, "spearman_all": every,
                     "range_top": {k: _range(v) for k, v in top.items()}, "range_all": _range(every)})
    return rows


def _range(values: Sequence[float]) -> float:
    return float("nan") if any(math.isnan(v) for v in values) else float(max(values) - min(values))


def margins(scores: list[dict], spread: list[dict], candidates: Sequence[str] | None = None,
            baselines: Sequence[str] | None = None) -> list[dict]:
    """Every candidate proxy against every baseline: the gap in top-k and all-architecture Spearman
    (candidate minus baseline, from the proxy table's means) and the larger of the two proxies'
    seed-to-seed ranges (:func:`training_spread`); ``beyond`` says whether the gap exceeds it.

    By default the candidates are the condensed proxies (a matching method: DC, DSA, DM, MTT,
    SelMatch) and the baselines the selection ones (random, herding, k-center, forgetting), by
    each run's kind; ``within`` is how far the candidate's best-by-proxy architecture falls below
    the best whole-set accuracy (points of accuracy, as a fraction)."""
    from dc_plugins.config import MATCHING_METHODS, SELECTION_METHODS

    by_label = {r["proxy"]: r for r in scores}
    ranges = {r["proxy"]: r for r in spread}
    kinds = {r["proxy"]: r["kind"] for r in spread}
    cands = [c for c in (candidates if candidates is not None else
                         [p for p in by_label if kinds.get(p, p) in MATCHING_METHODS]) if c in by_label]
    bases = [b for b in (baselines if baselines is not None else
                         [p for p in by_label if kinds.get(p, p) in SELECTION_METHODS]) if b in by_label]
    rows = []
    for c in cands:
        for b in bases:
            row = {"candidate": c, "baseline": b, "gap_top": {}, "spread_top": {}, "beyond_top": {},
                   "within": by_label[c]["best_reference_accuracy"] - by_label[c]["best_arch_reference_accuracy"]}
            for k in by_label[c]["spearman_top"]:
                gap = by_label[c]["spearman_top"][k] - by_label[b]["spearman_top"][k]
                sp = _larger(ranges, (c, b), lambda r, k=k: r["range_top"].get(k, float("nan")))
                row["gap_top"][k], row["spread_top"][k], row["beyond_top"][k] = gap, sp, _beyond(gap, sp)
            gap = by_label[c]["spearman_all"] - by_label[b]["spearman_all"]
            sp = _larger(ranges, (c, b), lambda r: r["range_all"])
            row.update(gap_all=gap, spread_all=sp, beyond_all=_beyond(gap, sp))
            rows.append(row)
    return rows


def _larger(ranges: Mapping, labels: Sequence[str], get) -> float:
    values = [get(ranges[x]) for x in labels if x in ranges]
    if len(values) < len(labels) or any(math.isnan(v) for v in values):
        return float("nan")   # a proxy trained once (or a constant ranking) has no measured spread
    return float(max(values))


def _beyond(gap: float, spread: float) -> bool | None:
    return None if math.isnan(gap) or math.isnan(spread) else bool(gap > spread)


def _markdown(title: str | None, head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (``title`` and a blank line above it when given)."""
    lines = [title, ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def format_training_spread(rows: list[dict]) -> str:
    """Markdown table of :func:`training_spread` rows under its heading ("" when there are none)."""
    if not rows:
        return ""
    ks = list(rows[0]["spearman_top"])
    heads = [f"top-{k} (k={rows[0]['top_k'][k]})" for k in ks] + [f"all (n={rows[0]['n']})"]
    body = [[r["proxy"], *(_per_training_cell(r["spearman_top"][k], r["range_top"][k]) for k in ks),
             _per_training_cell(r["spearman_all"], r["range_all"])] for r in rows]
    return "\n".join(_markdown("Each training against the reference (Spearman per training seed; range = max - min):",
                                ["proxy", *heads], body))


def _per_training_cell(values: Sequence[float], spread: float) -> str:
    return " / ".join(_fmt(v) for v in values) + f" (range {_fmt(spread)})"


def format_margins(rows: list[dict]) -> str:
    """Markdown table of :func:`margins` rows under its heading ("" when there are none)."""
    if not rows:
        return ""
    ks = list(rows[0]["gap_top"])
    head = ["candidate", "baseline", *(f"top-{k}: gap (spread)" for k in ks), "all: gap (spread)",
            "best-by-proxy below the best (points)"]
    body = [[r["candidate"], r["baseline"],
             *(_margin_cell(r["gap_top"][k], r["spread_top"][k], r["beyond_top"][k]) for k in ks),
             _margin_cell(r["gap_all"], r["spread_all"], r["beyond_all"]), _fmt(100 * r["within"], 1)] for r in rows]
    lines = _markdown("Condensed proxies against the selection baselines (Spearman gap, candidate minus baseline; "
                      "spread: the larger seed-to-seed range of the two):", head, body)
    lines += ["", "**beyond**: the gap is larger than the spread."]
    return "\n".join(lines)


def _margin_cell(gap: float, spread: float, beyond: bool | None) -> str:
    text = f"{gap:+.2f} ({_fmt(spread)})" if not math.isnan(gap) else "n/a"
    return text + (" **beyond**" if beyond else "")


def format_agreement(rows: list[dict]) -> str:
    """Markdown table of :func:`repeat_agreement` rows under its heading ("" when there are none)."""
    if not rows:
        return ""
    ks = list(rows[0]["spearman_top"])
    first, *rest = _spearman_heads(rows[0], ks)
    halves = any(r.get("half", 1) > 1 for r in rows)
    compared = "2nd vs 1st half of the trainings (means)" if halves else "2nd vs 1st training"
    head = ["run", f"{compared}: Spearman {first}", *rest, "mean abs. diff (points)"]
    body = []
    for r in rows:
        half = r.get("half", 1)
        run = f"{r['proxy']} ({half} + {half} trainings)" if halves else r["proxy"]
        body.append([run, *_spearman_cells(r, rows[0], ks), _fmt(100 * r["mean_abs_diff"], 1)])
    return "\n".join(_markdown("Seed-to-seed agreement (train.repeats):", head, body))


def top_k_choices(runs: Mapping, k: int) -> list[dict]:
    """What each run's own top ``k`` is made of: for every design choice (width, depth, norm,
    activation, pooling), how many of the ``k`` architectures the run ranks highest take each
    value. A proxy's top-k Spearman says how far it disagrees with the reference; this says in
    which design choice (e.g. a proxy that never ranks a pooling-free network near the top).
    Values are those of the architectures the runs finished, zeros included."""
    from .space import DIMENSIONS, choice_values, parse_arch

    specs = {a: parse_arch(a) for run in runs.values() for a in run.finished}
    values = choice_values(list(specs))
    rows = []
    for label, run in runs.items():
        top = top_k(run.finished, min(k, len(run.finished)))
        rows.append({"proxy": label, "k": len(top),
                     "choices": {d: {str(v): sum(specs[a][d] == v for a in top) for v in values[d]}
                                 for d in DIMENSIONS}})
    return rows


def format_choices(rows: list[dict]) -> str:
    """Markdown table of :func:`top_k_choices` rows under its heading ("" when there are none)."""
    if not rows:
        return ""
    dims = list(rows[0]["choices"])
    body = [[r["proxy"] + (f" (top {r['k']})" if r["k"] != rows[0]["k"] else ""),
             *(" · ".join(f"{v} {n}" for v, n in r["choices"][d].items()) for d in dims)] for r in rows]
    return "\n".join(_markdown(f"Design choices in each run's own top {rows[0]['k']} (architectures per value):",
                                ["run", *dims], body))


def rank_shifts(runs: Mapping, reference: str = "whole") -> list[dict]:
    """Which design choices each proxy misranks: for every run but ``reference``, over the
    architectures both finished, the mean of (rank by the proxy - rank by the reference) over the
    architectures taking each value of each design choice (rank 1 = best; ties share their mean
    rank). Positive: the proxy ranks those architectures lower than the reference does (e.g. +10
    for batch norm: ten places further down on average). The shifts of one choice sum to zero when
    weighted by the counts, so a large shift of one value is a bias against or for it, not noise
    common to all architectures."""
    from scipy.stats import rankdata

    from .space import DIMENSIONS, choice_values, parse_arch

    if reference not in runs:
        raise KeyError(f"reference run {reference!r} not among {sorted(runs)}")
    ref = runs[reference].finished
    rows = []
    for label, run in runs.items():
        if label == reference:
            continue
        archs = sorted(a for a in run.finished if a in ref)
        if len(archs) < 2:
            continue
        shift = dict(zip(archs, rankdata([-run.finished[a] for a in archs]) - rankdata([-ref[a] for a in archs])))
        specs = {a: parse_arch(a) for a in archs}
        values = choice_values(archs)
        rows.append({"proxy": label, "n": len(archs),
                     "shifts": {d: {str(v): float(statistics.fmean(shift[a] for a in archs if specs[a][d] == v))
                                    for v in values[d]} for d in DIMENSIONS}})
    return rows


def format_rank_shifts(rows: list[dict]) -> str:
    """Markdown table of :func:`rank_shifts` rows under its heading ("" when there are none)."""
    if not rows:
        return ""
    dims = list(rows[0]["shifts"])
    body = [[r["proxy"] + (f" (n={r['n']})" if r["n"] != rows[0]["n"] else ""),
             *(" · ".join(f"{v} {s:+.1f}" for v, s in r["shifts"][d].items()) for d in dims)] for r in rows]
    return "\n".join(_markdown("Rank shift by design choice (mean rank by the proxy minus rank by the reference; "
                                "positive: ranked lower than the reference ranks it):", ["proxy", *dims], body))


def format_report(scores: list[dict], agreement: list[dict], choices: Sequence[dict] = (),
                  spread: Sequence[dict] = (), margin_rows: Sequence[dict] = (), shifts: Sequence[dict] = ()) -> str:
    """The proxy table, then the seed-to-seed tables (agreement, each training against the
    reference, the condensed-vs-selection margins), the top-k design choices and the rank shift by
    design choice when there are any (``scores.md``'s text)."""
    parts = [format_table(scores), format_agreement(agreement), format_training_spread(list(spread)),
             format_margins(list(margin_rows)), format_choices(list(choices)), format_rank_shifts(list(shifts))]
    return "\n\n".join(p for p in parts if p)


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _spearman_heads(head_row: dict, ks: list[str]) -> list[str]:
    """Header labels of the Spearman columns, with ``head_row``'s k and n."""
    return [f"top-{k} (k={head_row['top_k'][k]})" for k in ks] + [f"all (n={head_row['n']})"]


def _spearman_cells(row: dict, head_row: dict, ks: list[str]) -> list[str]:
    """The top-k and all-architecture Spearman cells of ``row``. The header gives k and n from the
    first row; a row scored over other counts (a proxy with failed trials) says its own."""
    def cell(value: float, name: str, count: int, head_count: int) -> str:
        return _fmt(value) + (f" ({name}={count})" if count != head_count else "")
    return ([cell(row["spearman_top"][k], "k", row["top_k"][k], head_row["top_k"][k]) for k in ks]
            + [cell(row["spearman_all"], "n", row["n"], head_row["n"])])


def format_table(rows: list[dict]) -> str:
    """A Markdown table: accuracies in %, Spearman to 2 decimals, minutes, storage in images."""
    if not rows:
        return ""
    ks = list(rows[0]["spearman_top"])
    head = (["proxy", "best-by-proxy arch", "its whole-set acc. (%)"]
            + [f"Spearman {label}" for label in _spearman_heads(rows[0], ks)]
            + ["train (min)", "build (min)", "compute (min)", "of reference's", "early stopping at equal compute",
               "storage (images)", "failed"])
    body = [[r["proxy"], r["best_arch_by_proxy"], _fmt(100 * r["best_arch_reference_accuracy"], 1),
             *_spearman_cells(r, rows[0], ks),
             _fmt(r["train_minutes"], 1), _fmt(r["build_minutes"], 1), _compute_cell(r),
             _percent(r.get("compute_fraction")), _equal_compute_cell(r.get("early_stopping_equal_compute")),
             f"{r['storage_images']:,}", str(r["failed"])] for r in rows]
    lines = _markdown(None, head, body)
    best = rows[0]["best_reference_accuracy"]
    lines.append("")
    lines.append(f"Best whole-set accuracy over the architectures: {100 * best:.1f} %.")
    spread = rows[0].get("reference_spread")
    if spread:
        lines.append("Reference spread (best minus k-th whole-set accuracy): "
                     + ", ".join(f"top-{k} {100 * v:.1f} points" for k, v in spread.items()) + ".")
    if any(r.get("early_stopping_equal_compute") for r in rows):
        lines.append("Compute: build plus every trial's training and validation, from the recorded times (device "
                     "in brackets). Early stopping at equal compute: the budget at which the early-stopping "
                     "baseline would cost what that proxy cost, as train.epochs (its unit) and as a multiple of "
                     "the budget it ran with.")
    return "\n".join(lines)


def _compute_cell(row: dict) -> str:
    if "compute_minutes" not in row:
        return "n/a"
    device = row.get("compute_device")
    return _fmt(row["compute_minutes"], 1) + (f" ({device})" if device else "")


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _equal_compute_cell(eq: dict | None) -> str:
    if not eq:
        return ""
    return f"{eq['epochs']:.0f} epochs ({eq['ratio']:.1f}x)"


def scatter_plot(runs: Mapping, reference: str, path: str | Path) -> Path:
    """One panel per proxy: its validation accuracy (x) against the reference's (y), PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = runs[reference].finished
    others = [label for label in runs if label != reference] or [reference]
    cols = min(3, len(others))
    rows = math.ceil(len(others) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, label in zip(axes.flat, others):
        acc = runs[label].finished
        common = sorted(set(acc) & set(ref))
        x = [100 * acc[a] for a in common]
        y = [100 * ref[a] for a in common]
        ax.scatter(x, y, s=12, alpha=0.7)
        rho = spearman(x, y) if len(common) >= 2 else float("nan")
        ax.set_title(f"{label} (Spearman {_fmt(rho)})", fontsize=10)
        ax.set_xlabel(f"{label} validation accuracy (%)")
        ax.set_ylabel(f"{reference} validation accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(others):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
