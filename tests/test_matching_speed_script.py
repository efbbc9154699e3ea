"""benchmarks/matching_speed.py: its --quick smoke mode on generated data writes the JSON and
Markdown it promises, and bad choices are one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.matching_speed import Case, main, plan_cases

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_every_case_with_a_time_and_memory(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "matching_speed.py"), "--quick", "--data", "generated",
           "--methods", "dc", "--threads", "1", "--device", "cpu", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "matching_speed.json").read_text())
    for key in ("cpu", "cpu_count", "torch", "threads"):
        assert key in result["machine"]
    assert result["threads"] == 1 and result["quick"] and result["data"].startswith("generated")
    cases = {c["case"]: c for c in result["cases"]}
    assert set(cases) == {f"dc-cpu-quick-ipc1-{v}" for v in ("loop", "vectorize", "bf16")}
    for c in cases.values():
        assert "error" not in c, c
        assert c["seconds_per_iteration"] > 0 and len(c["seconds"]) == 1
        assert c["peak_rss_mb"] > 0 and c["threads"] == 1
        assert c["settings"]["outer_loop"] == 1 and c["settings"]["batch_real"] == 8
        assert c["first_loss"] > 0
    # the same seed: vectorize computes the loop's gradient up to float rounding; bf16 is only reported
    assert cases["dc-cpu-quick-ipc1-vectorize"]["grad_rel_diff_vs_loop"] < 1e-4
    assert cases["dc-cpu-quick-ipc1-bf16"]["grad_rel_diff_vs_loop"] >= 0
    assert cases["dc-cpu-quick-ipc1-bf16"]["autocast"] == "bf16"
    md = (tmp_path / "matching_speed.md").read_text()
    assert "dc-cpu-quick-ipc1-vectorize" in md and result["machine"]["torch"] in md


@pytest.mark.parametrize("flag, value, words", [
    ("--methods", "dcc", "unknown method 'dcc'; allowed: dc, dsa, dm, mtt"),
    ("--variants", "fp8", "unknown variant 'fp8'; allowed: loop, vectorize, bf16"),
    ("--budget", "huge", "unknown budget 'huge'; allowed: paper, cpu-quick"),
])
def test_unknown_choice_is_named_with_what_is_allowed(flag, value, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main([flag, value, "--data", "generated"])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_vectorize_is_left_out_where_there_is_no_class_loop():
    cases, skipped = plan_cases(["dc", "dm", "mtt"], ["paper"], [10], ["loop", "vectorize", "bf16"], None)
    assert [c.name for c in cases] == ["dc-paper-ipc10-loop", "dc-paper-ipc10-vectorize", "dc-paper-ipc10-bf16",
                                       "dm-paper-ipc10-loop", "dm-paper-ipc10-bf16",
                                       "mtt-paper-ipc10-loop", "mtt-paper-ipc10-bf16"]
    assert skipped == ["dm-paper-ipc10-vectorize", "mtt-paper-ipc10-vectorize"]
    assert Case.parse("dsa-cpu-quick-ipc50-bf16") == Case("dsa", "cpu-quick", 50, "bf16")
    only, _ = plan_cases(["dc", "dm"], ["paper", "cpu-quick"], [1, 50], ["loop", "bf16"], ["*-cpu-quick-ipc50-*"])
    assert [c.name for c in only] == ["dc-cpu-quick-ipc50-loop", "dc-cpu-quick-ipc50-bf16",
                                      "dm-cpu-quick-ipc50-loop", "dm-cpu-quick-ipc50-bf16"]


def test_the_parent_process_imports_no_torch():
    # a case's wait4 ru_maxrss starts from the size of the process it is forked from: the parent
    # must stay small for the peaks to be the cases' own
    code = "import sys, benchmarks.matching_speed; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
