"""The continual table's paired comparison against the herding memory."""

import pytest

from strategies.report import paired_differences, paired_markdown


def _run(memory, distill, seed, last):
    return {"memory": memory, "distillation": distill, "seed": seed,
            "stages": [{"mean_seen": 0.9}, {"mean_seen": last}]}


def test_paired_differences_subtract_the_herding_run_of_the_same_seed_and_distillation():
    results = [_run("learner-herding", False, 0, 0.10), _run("learner-herding", False, 1, 0.30),
               _run("dm", False, 0, 0.15), _run("dm", False, 1, 0.31),
               _run("learner-herding", True, 0, 0.20), _run("dm", True, 0, 0.18),
               _run("dm", True, 1, 0.50)]  # no herding run of seed 1 with distillation: left out
    rows = {(r["memory"], r["distillation"]): r for r in paired_differences(results)}
    assert set(rows) == {("dm", False), ("dm", True)}
    assert rows[("dm", False)]["differences"] == pytest.approx([5.0, 1.0])
    assert rows[("dm", False)]["mean"] == pytest.approx(3.0) and rows[("dm", False)]["std"] == pytest.approx(2.0)
    assert rows[("dm", False)]["ahead_on_every_seed"]
    assert rows[("dm", True)]["seeds"] == [0] and not rows[("dm", True)]["ahead_on_every_seed"]
    text = paired_markdown(list(rows.values()))
    assert "against learner-herding" in text and "+5.00, +1.00 | +3.00 ± 2.00" in text


def test_no_baseline_means_no_paired_table():
    results = [_run("dm", False, 0, 0.2), _run("dc", False, 0, 0.3)]
    assert paired_differences(results) == [] and paired_markdown([]) == ""
    assert [r["memory"] for r in paired_differences(results, baseline="dc")] == ["dm"]
