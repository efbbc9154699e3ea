"""The suite reuses a finished run only when it is of the configuration it would run now."""

from __future__ import annotations

import json

import pytest

from dc_plugins.fingerprint import ConfigMismatchError
from dc_plugins.suite import Suite


def tiny_suite(out, **overrides) -> Suite:
    return Suite(["digits"], [1], ["random"], out=str(out), preset="cpu-quick", eval_networks=1,
                 overrides={"net": "convnet-w4-d1", "eval": {"epochs": 2}, **overrides})


def test_finished_runs_are_reused_only_for_the_same_configuration(tmp_path, monkeypatch):
    from dc_plugins import cli

    first = tiny_suite(tmp_path).run(log=lambda s: None)
    calls = []
    real_run = cli.run
    monkeypatch.setattr(cli, "run", lambda cfg, **kw: calls.append(cfg) or real_run(cfg, **kw))
    again = tiny_suite(tmp_path).run(log=lambda s: None)
    assert calls == [] and again == first  # same configuration: reused, not rerun
    with pytest.raises(ConfigMismatchError) as info:
        tiny_suite(tmp_path, eval={"epochs": 3}).run(log=lambda s: None)
    message = str(info.value)
    assert "\n" not in message and "eval.epochs: 2 -> 3" in message and "delete" in message
    assert calls == []


def test_a_result_without_fingerprint_is_not_reused(tmp_path):
    tiny_suite(tmp_path).run(log=lambda s: None)
    done = next(tmp_path.rglob("result.json"))
    result = json.loads(done.read_text())
    del result["fingerprint"]
    done.write_text(json.dumps(result))
    with pytest.raises(ConfigMismatchError, match="has no configuration fingerprint"):
        tiny_suite(tmp_path).run(log=lambda s: None)


def test_changed_data_is_a_changed_configuration(tmp_path):
    tiny_suite(tmp_path).run(log=lambda s: None)
    done = next(tmp_path.rglob("result.json"))
    result = json.loads(done.read_text())
    result["fingerprint"]["data"] = "0" * 64
    done.write_text(json.dumps(result))
    with pytest.raises(ConfigMismatchError, match=r"data: 000000000000 -> [0-9a-f]{12}"):
        tiny_suite(tmp_path).run(log=lambda s: None)


def test_committed_results_let_a_fresh_checkout_continue(tmp_path, monkeypatch):
    from dc_plugins import cli

    results = tmp_path / "results"
    first = tiny_suite(tmp_path / "machine1")
    first.results = str(results)
    expected = first.run(log=lambda s: None)
    kept = results / "digits-ipc1-random.json"
    assert kept.exists() and json.loads(kept.read_text())["accuracies"] == expected[0]["accuracies"]

    calls = []
    monkeypatch.setattr(cli, "run", lambda cfg, **kw: calls.append(cfg))
    fresh = tiny_suite(tmp_path / "machine2")  # runs/ of the first machine is gone
    fresh.results = str(results)
    assert fresh.run(log=lambda s: None) == expected and calls == []

    other = tiny_suite(tmp_path / "machine3", eval={"epochs": 3})
    other.results = str(results)
    with pytest.raises(ConfigMismatchError, match=r"eval.epochs: 2 -> 3.*delete .*digits-ipc1-random.json"):
        other.run(log=lambda s: None)
    assert calls == []


def test_a_corrupt_committed_result_is_refused_by_name(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "digits-ipc1-random.json").write_text('{"accuracies": [0.5')
    suite = tiny_suite(tmp_path / "out")
    suite.results = str(results)
    with pytest.raises(ValueError, match=r"digits-ipc1-random.json is not a result file"):
        suite.run(log=lambda s: None)


def test_the_committed_table_holds_every_kept_run_not_only_this_invocations(tmp_path):
    results = tmp_path / "results"
    first = tiny_suite(tmp_path / "out")
    first.results = str(results)
    first.write_tables(first.run(log=lambda s: None))
    (results / "whole-set.json").write_text('{"not": "a run"}')  # other files in the folder are not rows

    second = Suite(["digits"], [1], ["herding"], out=str(tmp_path / "out"), preset="cpu-quick", eval_networks=1,
                   overrides={"net": "convnet-w4-d1", "eval": {"epochs": 2}}, results=str(results))
    text = second.write_tables(second.run(log=lambda s: None))
    assert "| herding |" in text and "| random |" not in text  # OUT/table.md: this invocation
    committed = (results / "table.md").read_text()
    rows = [line for line in committed.splitlines() if line.startswith("| digits")]
    assert [row.split(" | ")[2] for row in rows] == ["random", "herding"]  # table order, both kept
    assert not list(results.glob(".*.tmp*"))
