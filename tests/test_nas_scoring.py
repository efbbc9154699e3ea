"""Spearman scoring of proxies against the whole-set ranking."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from nas.scoring import (format_agreement, format_choices, format_margins, format_rank_shifts, format_report,
                         format_table, format_training_spread, margins, parse_k, rank_shifts, repeat_agreement,
                         score_proxy, score_runs, spearman, top_k, top_k_choices, training_spread)


def test_identical_ranking_is_one_and_reversed_is_minus_one():
    ref = [0.1, 0.5, 0.3, 0.9, 0.7]
    assert spearman(ref, ref) == pytest.approx(1.0)
    assert spearman([2 * v + 1 for v in ref], ref) == pytest.approx(1.0)   # ranks, not values
    assert spearman([-v for v in ref], ref) == pytest.approx(-1.0)


def test_constant_side_is_nan():
    assert math.isnan(spearman([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))


def test_top_k_selects_the_best_by_reference():
    ref = {"a": 0.9, "b": 0.2, "c": 0.8, "d": 0.5, "e": 0.8}
    assert top_k(ref, 3) == ["a", "c", "e"]   # tie at 0.8 broken by name
    assert top_k(ref, 1) == ["a"]


def test_top_k_spearman_uses_only_the_top_architectures():
    ref = {f"x{i}": i / 10 for i in range(10)}
    # The proxy agrees on the top 4 and is reversed on the rest.
    proxy = {a: (v if v >= 0.6 else 0.5 - v) for a, v in ref.items()}
    row = score_proxy(proxy, ref, ["4", "10", "40%"])
    assert row["spearman_top"]["4"] == pytest.approx(1.0)
    assert row["top_k"] == {"4": 4, "10": 10, "40%": 4}
    assert row["spearman_top"]["10"] < 0.9
    assert row["best_arch_by_proxy"] == "x9" and row["best_arch_reference_accuracy"] == pytest.approx(0.9)


def test_best_by_proxy_reports_its_reference_accuracy():
    ref = {"a": 0.9, "b": 0.6, "c": 0.3}
    proxy = {"a": 0.1, "b": 0.8, "c": 0.2}
    row = score_proxy(proxy, ref, ["2"])
    assert row["best_arch_by_proxy"] == "b"
    assert row["best_arch_reference_accuracy"] == pytest.approx(0.6)
    assert row["best_reference_accuracy"] == pytest.approx(0.9)


def test_percent_k_and_bad_k():
    assert parse_k("5%", 720) == 36
    assert parse_k("5%", 40) == 2
    assert parse_k(10, 40) == 10
    with pytest.raises(ValueError, match="only 5 finished"):
        parse_k("10", 5)
    with pytest.raises(ValueError, match="integer or a percentage"):
        parse_k("ten", 50)
    with pytest.raises(ValueError, match="at least 2"):
        parse_k("1", 50)


def test_top_k_larger_than_finished_trials_is_a_clear_error():
    ref = {"a": 0.9, "b": 0.6, "c": 0.3}
    with pytest.raises(ValueError, match="top-k '10' asks for 10 architectures, but only 3 finished"):
        score_proxy(ref, ref, ["10"])
    # Only architectures finished under both count.
    with pytest.raises(ValueError, match="only 2 finished"):
        score_proxy({"a": 0.5, "b": 0.4}, ref, ["3"])


def test_table_formats_every_row():
    ref = {"a": 0.9, "b": 0.6, "c": 0.3}
    row = {"proxy": "whole", **score_proxy(ref, ref, ["2"]), "train_minutes": 1.0, "build_minutes": 0.0,
           "storage_images": 1000, "storage_bytes": 4000, "failed": 0}
    text = format_table([row])
    assert "| whole | a | 90.0 | 1.00 |" in text and "1,000" in text


def _run(accuracies: dict[str, list[float]], failed: tuple[str, ...] = ()):
    records = {a: SimpleNamespace(status="finished", accuracies=acc, accuracy=sum(acc) / len(acc))
               for a, acc in accuracies.items()}
    records.update({a: SimpleNamespace(status="failed", accuracies=[], accuracy=None) for a in failed})
    return SimpleNamespace(records=records)


def test_repeat_agreement_scores_the_second_seed_against_the_first():
    # Seed 2 swaps the two best of seed 1 and keeps the rest: top-2 is -1, all four 0.8.
    twice = _run({"a": [0.9, 0.8], "b": [0.8, 0.9], "c": [0.5, 0.5], "d": [0.2, 0.3]}, failed=("e",))
    once = _run({"a": [0.9], "b": [0.8], "c": [0.5]})
    rows = repeat_agreement({"whole": twice, "random": once}, ["2"])
    assert [r["proxy"] for r in rows] == ["whole"]              # one training per arch: no row
    row = rows[0]
    assert row["n"] == 4 and row["spearman_top"]["2"] == pytest.approx(-1.0)
    assert row["spearman_all"] == pytest.approx(0.8)
    assert row["mean_abs_diff"] == pytest.approx((0.1 + 0.1 + 0.0 + 0.1) / 4)
    text = format_agreement(rows)
    assert "| whole | -1.00 | 0.80 | 7.5 |" in text and "top-2 (k=2)" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1       # header and rows: same columns
    assert format_agreement([]) == ""


def test_repeat_agreement_compares_halves_of_four_trainings():
    # Means of seeds 0-1: a .85, b .80, c .50; of seeds 2-3: a .80, b .85, c .45 -> top-2 swaps.
    four = _run({"a": [0.9, 0.8, 0.8, 0.8], "b": [0.8, 0.8, 0.9, 0.8], "c": [0.5, 0.5, 0.4, 0.5]})
    two = _run({"a": [0.9, 0.8], "b": [0.8, 0.9], "c": [0.5, 0.5]})
    rows = repeat_agreement({"whole": four, "random": two}, ["2"])
    assert [r["half"] for r in rows] == [2, 1]
    assert rows[0]["spearman_top"]["2"] == pytest.approx(-1.0) and rows[0]["spearman_all"] == pytest.approx(0.5)
    assert rows[0]["mean_abs_diff"] == pytest.approx((0.05 + 0.05 + 0.05) / 3)
    text = format_agreement(rows)
    assert "2nd vs 1st half of the trainings (means)" in text
    assert "| whole (2 + 2 trainings) | -1.00 | 0.50 | 5.0 |" in text and "| random (1 + 1 trainings) |" in text


def test_a_row_scored_over_fewer_architectures_says_its_own_counts():
    # The header takes n and k from the first row; a proxy with a failed trial is scored over
    # fewer architectures (here 3 of 4) and says so.
    ref = {"a": 0.9, "b": 0.6, "c": 0.3, "d": 0.1}
    extras = {"train_minutes": 1.0, "build_minutes": 0.0, "storage_images": 100, "storage_bytes": 400}
    whole = {"proxy": "whole", **score_proxy(ref, ref, ["2"]), **extras, "failed": 0}
    proxy = {"a": 0.8, "b": 0.7, "c": 0.2}                     # "d" failed under this proxy
    dc = {"proxy": "dc", **score_proxy(proxy, ref, ["2"]), **extras, "failed": 1}
    text = format_table([whole, dc])
    assert "Spearman all (n=4)" in text
    assert "| dc | a | 90.0 | 1.00 | 1.00 (n=3) |" in text
    assert "| whole | a | 90.0 | 1.00 | 1.00 |" in text       # the header's counts: no annotation


def test_top_k_choices_count_the_design_choices_of_each_runs_own_top():
    archs = ["w32-d1-none-relu-max", "w32-d3-batch-relu-none", "w64-d3-batch-relu-avg", "w64-d2-group-relu-max"]
    # The reference ranks the deep pooling-free net first; the proxy ranks both max-pooling nets first.
    whole = SimpleNamespace(finished=dict(zip(archs, [0.90, 0.99, 0.97, 0.80])))
    proxy = SimpleNamespace(finished=dict(zip(archs, [0.95, 0.70, 0.60, 0.90])))
    rows = top_k_choices({"whole": whole, "dc": proxy}, 2)
    assert [r["proxy"] for r in rows] == ["whole", "dc"] and rows[0]["k"] == 2
    assert rows[0]["choices"]["pooling"] == {"none": 1, "max": 0, "avg": 1}    # grid order, zeros kept
    assert rows[1]["choices"]["pooling"] == {"none": 0, "max": 2, "avg": 0}
    assert rows[1]["choices"]["depth"] == {"1": 1, "2": 1, "3": 0}
    assert rows[0]["choices"]["norm"] == {"none": 0, "batch": 2, "group": 0}
    text = format_choices(rows)
    assert text.startswith("Design choices in each run's own top 2")
    assert "| dc | 32 1 · 64 1 | 1 1 · 2 1 · 3 0 | none 1 · batch 0 · group 1 | relu 2 | none 0 · max 2 · avg 0 |" in text
    assert format_choices([]) == ""
    assert format_report([], [], rows) == text


def test_rank_shifts_say_which_design_choice_a_proxy_ranks_lower():
    archs = ["w32-d1-batch-relu-max", "w32-d1-none-relu-max", "w64-d2-batch-relu-max", "w64-d2-none-relu-max"]
    # Reference ranks: 1, 3, 2, 4 (batch first); the proxy puts both batch-norm nets last: 3, 1, 4, 2.
    whole = SimpleNamespace(finished=dict(zip(archs, [0.9, 0.7, 0.8, 0.6])))
    proxy = SimpleNamespace(finished=dict(zip(archs, [0.7, 0.9, 0.6, 0.8])))
    agree = SimpleNamespace(finished=dict(whole.finished))
    partial = SimpleNamespace(finished={archs[0]: 0.5})            # one architecture: nothing to rank
    rows = rank_shifts({"whole": whole, "dc": proxy, "random": agree, "mtt": partial}, "whole")
    assert [r["proxy"] for r in rows] == ["dc", "random"] and rows[0]["n"] == 4
    assert rows[0]["shifts"]["norm"] == {"none": pytest.approx(-2.0), "batch": pytest.approx(2.0)}
    assert rows[0]["shifts"]["width"] == {"32": pytest.approx(0.0), "64": pytest.approx(0.0)}
    assert all(v == 0 for d in rows[1]["shifts"].values() for v in d.values())
    text = format_rank_shifts(rows)
    assert text.startswith("Rank shift by design choice")
    assert "| dc | 32 +0.0 · 64 +0.0 | 1 +0.0 · 2 +0.0 | none -2.0 · batch +2.0 | relu +0.0 | max +0.0 |" in text
    assert format_rank_shifts([]) == ""
    assert format_report([], [], shifts=rows) == text
    with pytest.raises(KeyError, match="reference run 'nope'"):
        rank_shifts({"whole": whole}, "nope")


def _timed_run(kind: str, build_seconds: float, trials: dict, num_images: int = 100, build_device: str = "cpu"):
    """A proxy run built by hand: ``trials`` maps arch -> (accuracy, seconds, eval_seconds, images_seen, steps)."""
    records = {a: SimpleNamespace(status="finished", accuracy=acc, accuracies=[acc], seconds=sec, eval_seconds=ev,
                                  images_seen=img, steps=steps, device="cpu")
               for a, (acc, sec, ev, img, steps) in trials.items()}
    proxy = SimpleNamespace(kind=kind, build_seconds=build_seconds, build_device=build_device, num_images=num_images,
                            storage_bytes=4 * num_images)
    return SimpleNamespace(proxy=proxy, records=records, failed=[],
                           finished={a: r.accuracy for a, r in records.items()})


def test_cost_columns_come_from_the_recorded_times():
    from nas.scoring import equal_compute_early_stopping, proxy_compute, score_runs

    runs = {
        "whole": _timed_run("whole", 0.0, {"a": (0.9, 120, 10, 50_000, 200), "b": (0.8, 180, 10, 50_000, 200)}, 5000),
        "dc": _timed_run("dc", 60.0, {"a": (0.7, 6, 1, 5000, 50), "b": (0.5, 6, 1, 5000, 50)}),
        "random": _timed_run("random", 0.0, {"a": (0.6, 6, 1, 5000, 50), "b": (0.65, 6, 1, 5000, 50)}),
        # Early stopping: 8 steps of 250 images; a trains at 2 ms per image, b at 4 ms, 1 s validation each.
        "early-stopping": _timed_run("early-stopping", 0.0, {"a": (0.5, 5, 1, 2000, 8), "b": (0.4, 9, 1, 2000, 8)},
                                     5000),
    }
    assert proxy_compute(runs["dc"]) == {"build_minutes": 1.0, "train_minutes": 0.2, "compute_minutes": 1.2,
                                         "compute_device": "cpu"}
    # DC cost 72 s for both architectures: early stopping could train (72 - 2) / (0.002 + 0.004) images each,
    # which costs a 11,666.7 x 0.002 + 1 = 24.3 s and b 47.7 s, 72 s in all.
    eq = equal_compute_early_stopping(runs["dc"], runs["early-stopping"])
    assert eq["steps"] == pytest.approx(70 / 0.006 / 250) and eq["epochs"] == pytest.approx(70 / 0.006 / 100)
    assert eq["ratio"] == pytest.approx(70 / 0.006 / 2000) and eq["n"] == 2
    rows = {r["proxy"]: r for r in score_runs(runs, "whole", ["2"])}
    assert rows["whole"]["compute_minutes"] == pytest.approx(5.0) and rows["whole"]["compute_fraction"] == 1.0
    assert rows["dc"]["compute_fraction"] == pytest.approx(1.2 / 5)
    assert rows["random"]["early_stopping_equal_compute"]["ratio"] == pytest.approx(10 / 0.006 / 2000)
    assert rows["whole"]["early_stopping_equal_compute"] is None
    assert rows["early-stopping"]["early_stopping_equal_compute"] is None
    text = format_table(list(rows.values()))
    assert "| compute (min) | of reference's | early stopping at equal compute |" in text
    assert "| 1.2 (cpu) | 24.0 % | 117 epochs (5.8x) |" in text
    # A GPU-built proxy with CPU trials says both; records that predate the device field say "?".
    runs["dc"].proxy.build_device = "cuda"
    assert proxy_compute(runs["dc"])["compute_device"] == "cpu+cuda"
    for r in runs["random"].records.values():
        r.device = ""
    assert proxy_compute(runs["random"])["compute_device"] == "?"


def test_the_table_says_how_far_the_reference_top_spreads():
    ref = {"a": 0.9, "b": 0.85, "c": 0.6, "d": 0.5}
    row = {"proxy": "whole", **score_proxy(ref, ref, ["2", "3"]), "train_minutes": 1.0, "build_minutes": 0.0,
           "storage_images": 1000, "storage_bytes": 4000, "failed": 0}
    assert row["reference_spread"] == pytest.approx({"2": 0.05, "3": 0.3})
    assert "Reference spread (best minus k-th whole-set accuracy): top-2 5.0 points, top-3 30.0 points." \
        in format_table([row])


def _proxy_run(kind: str, accuracies: dict[str, list[float]]):
    """A run whose trials have per-training accuracies (and one second of training each)."""
    run = _timed_run(kind, 0.0, {a: (sum(acc) / len(acc), 1.0, 0.0, 100, 1) for a, acc in accuracies.items()})
    for a, acc in accuracies.items():
        run.records[a].accuracies = acc
    return run


def test_each_training_is_scored_against_the_reference_and_its_range_is_the_spread():
    whole = _proxy_run("whole", {"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.5, 0.5], "d": [0.2, 0.2]})
    # Training 0 ranks like the reference; training 1 swaps the two best: top-2 +1 then -1.
    dm = _proxy_run("dm", {"a": [0.6, 0.5], "b": [0.5, 0.6], "c": [0.3, 0.3], "d": [0.1, 0.1]})
    once = _proxy_run("random", {"a": [0.6], "b": [0.5], "c": [0.3], "d": [0.1]})
    rows = training_spread({"whole": whole, "dm": dm, "random": once}, "whole", ["2"])
    assert [r["proxy"] for r in rows] == ["dm"]          # the reference and a proxy trained once: no row
    row = rows[0]
    assert row["trainings"] == 2 and row["kind"] == "dm"
    assert row["spearman_top"]["2"] == pytest.approx([1.0, -1.0]) and row["range_top"]["2"] == pytest.approx(2.0)
    assert row["spearman_all"] == pytest.approx([1.0, 0.8]) and row["range_all"] == pytest.approx(0.2)
    text = format_training_spread(rows)
    assert "| dm | 1.00 / -1.00 (range 2.00) | 1.00 / 0.80 (range 0.20) |" in text
    assert format_training_spread([]) == ""


def test_margins_compare_condensed_to_selection_proxies_against_their_spread():
    ref = {"a": 0.9, "b": 0.8, "c": 0.5, "d": 0.2, "e": 0.1}
    whole = _proxy_run("whole", {a: [v, v] for a, v in ref.items()})
    # dm ranks the reference's order with both seeds (range 0); random is reversed in the top
    # with a small seed spread; herding has one training (no measured spread).
    dm = _proxy_run("dm", {"a": [0.6, 0.61], "b": [0.5, 0.52], "c": [0.3, 0.31], "d": [0.2, 0.21], "e": [0.1, 0.1]})
    rnd = _proxy_run("random", {"a": [0.4, 0.4], "b": [0.5, 0.5], "c": [0.6, 0.6], "d": [0.2, 0.3], "e": [0.3, 0.2]})
    herd = _proxy_run("herding", {"a": [0.6], "b": [0.5], "c": [0.3], "d": [0.4], "e": [0.1]})
    runs = {"whole": whole, "dm": dm, "random": rnd, "herding": herd}
    scores = score_runs(runs, "whole", ["3"])
    spread = training_spread(runs, "whole", ["3"])
    rows = margins(scores, spread)
    assert [(r["candidate"], r["baseline"]) for r in rows] == [("dm", "random"), ("dm", "herding")]
    vs_random, vs_herding = rows
    assert vs_random["gap_top"]["3"] == pytest.approx(2.0)        # +1 against -1
    assert vs_random["spread_top"]["3"] == pytest.approx(0.0) and vs_random["beyond_top"]["3"] is True
    assert vs_herding["beyond_top"]["3"] is None                  # herding trained once: no spread to beat
    assert vs_random["within"] == pytest.approx(0.0)              # dm's first choice is the best
    text = format_margins(rows)
    assert "| dm | random | +2.00 (0.00) **beyond** |" in text
    assert "| dm | herding | +0.00 (n/a) |" in text
    # explicit labels; unknown ones are left out
    assert [r["baseline"] for r in margins(scores, spread, candidates=["dm"], baselines=["herding", "nope"])] \
        == ["herding"]
    report = format_report(scores, [], (), spread, rows)
    assert "Each training against the reference" in report and "Condensed proxies against" in report
