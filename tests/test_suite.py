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
    import dc_plugins.cli as cli

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
