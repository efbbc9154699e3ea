"""NNI's training-service engine (``experiment.engine: ts``) end to end, as a user runs it:
``dc-nas`` starts NNI's Node.js manager on a free port, runs a two-architecture grid per proxy as
trial processes of NNI's ``local`` training service, stops the manager, and scores the proxies;
the trials train exactly what the in-process engine trains.

Slow-marked (``-m "not slow"`` leaves it out) but in the default run: about a minute on 2 cores,
most of it NNI starting a manager per proxy and a Python process per trial. Skipped, with the
reason, only where NNI's manager cannot start (``nas.experiment.check_training_service``: no
runnable Node.js binary, no local port); anything else that goes wrong fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("nni")

from nas.cli import main  # noqa: E402
from nas.config import load_config  # noqa: E402
from nas.experiment import TrainingServiceUnavailable, check_training_service, run_nas  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*is found to be not a nn.Module")

ARCHS = ["w8-d2-none-relu-avg", "w8-d2-instance-relu-avg"]

# scikit-learn digits (no files), two architectures, budgets that reach well above chance (0.1)
# in about a second of training per trial.
CONFIG = {
    "device": "cpu",
    "threads": 1,
    "proxies": ["whole", "random"],
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "space": {"archs": ARCHS},
    "proxy": {"ipc": 3, "preset": "cpu-quick"},
    "train": {"epochs": 30, "whole_epochs": 10, "lr": 0.05, "batch": 128, "report_every": 10},
    "score": {"top_k": ["2"], "plot": False},
}


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("localhost", port)) == 0


def _managers_on(port: int) -> list[int]:
    """Live NNI managers registered (in NNI's own experiment registry) on ``port``."""
    from nni.tools.nnictl.config_utils import Experiments

    pids = []
    for entry in Experiments().get_all_experiments().values():
        pid = entry.get("pid")
        if entry.get("port") != port or not pid:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"main.js" in cmdline:
            pids.append(pid)
    return pids


@pytest.fixture
def nni_port():
    """A free local port; afterwards, any NNI manager still running on it is killed and fails the test."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    except OSError as err:
        pytest.skip(f"NNI's manager cannot start here: no local port can be bound ({err})")
    yield port
    leftover = _managers_on(port)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"NNI manager(s) {leftover} were still running on port {port} (killed)"


def _final_metrics(experiment_dir: Path) -> list[float]:
    """The final results NNI's manager recorded (its own database), one per succeeded trial."""
    with sqlite3.connect(experiment_dir / "db" / "nni.sqlite") as db:
        succeeded = {t for (t,) in db.execute("SELECT trialJobId FROM TrialJobEvent WHERE event = 'SUCCEEDED'")}
        rows = db.execute("SELECT trialJobId, data FROM MetricData WHERE type = 'FINAL'").fetchall()
    assert {t for t, _ in rows} == succeeded
    return sorted(float(json.loads(data)) for _, data in rows)


@pytest.mark.slow
def test_ts_engine_runs_a_two_architecture_grid_end_to_end(tmp_path, nni_port):
    workdir = tmp_path / "nni"
    values = dict(CONFIG, out=str(tmp_path / "ts"),
                  experiment={"engine": "ts", "port": nni_port, "working_directory": str(workdir),
                              "trial_concurrency": 2, "training_service": {"platform": "local"}})
    try:
        check_training_service(load_config(None, [values]).experiment)
    except TrainingServiceUnavailable as err:
        pytest.skip(f"NNI's manager cannot start here: {err}")
    config_file = tmp_path / "ts.yaml"
    config_file.write_text(json.dumps(values))  # JSON is YAML
    home = Path.home() / "nni-experiments"
    home_before = set(os.listdir(home)) if home.is_dir() else set()

    assert main(["--config", str(config_file), "--no-progress"]) == 0

    assert not _listening(nni_port)  # every manager was stopped
    payload = json.loads((tmp_path / "ts" / "results.json").read_text())
    for label in ("whole", "random"):
        run = payload["proxies"][label]
        trials = run["trials"]
        assert [t["arch"] for t in trials] == ARCHS and all(t["status"] == "finished" for t in trials)
        assert all(0.0 <= t["accuracy"] <= 1.0 and t["steps"] > 0 and t["seconds"] > 0 for t in trials), trials
        # Each trial ran as its own process under NNI's local training service, in the working
        # directory given (not ~/nni-experiments), and reported its result to NNI's manager.
        experiment_dir = workdir / run["experiment_id"]
        assert len(list((experiment_dir / "environments" / "local-env" / "trials").iterdir())) == 2
        assert _final_metrics(experiment_dir) == sorted(t["accuracy"] for t in trials)
        assert run["experiment_id"] not in home_before and not (home / run["experiment_id"]).exists()
    scores = {row["proxy"]: row for row in payload["scores"]}
    assert set(scores) == {"whole", "random"} and all(row["n"] == 2 and row["failed"] == 0 for row in scores.values())
    assert scores["whole"]["spearman_all"] == pytest.approx(1.0)
    assert scores["random"]["spearman_all"] in (pytest.approx(1.0), pytest.approx(-1.0))
    assert scores["whole"]["best_reference_accuracy"] > 0.5  # trained, not chance (0.1)

    # The trial processes trained exactly what the in-process engine trains.
    sequential = run_nas(load_config(None, [dict(CONFIG, out=str(tmp_path / "seq"), progress=False)]))
    for label in ("whole", "random"):
        by_arch = {t["arch"]: t["accuracy"] for t in payload["proxies"][label]["trials"]}
        assert by_arch == sequential.runs[label].finished


# -- what refuses the engine before anything is written (fast) ------------------------------------

def test_a_taken_port_is_refused_in_one_line_before_the_output_folder(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        values = dict(CONFIG, out=str(tmp_path / "out"), experiment={"engine": "ts", "port": port})
        with pytest.raises(TrainingServiceUnavailable, match=f"experiment.port = {port} is in use"):
            run_nas(load_config(None, [values]))
        assert main(["--engine", "ts", "--set", f"experiment.port={port}", "--dataset", "digits",
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dc-nas: error: experiment.port") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    # Remote (and cluster) platforms: NNI's manager listens on port + 1 as well.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        next_port = busy.getsockname()[1]
        remote = load_config(None, [{"experiment": {"engine": "ts", "port": next_port - 1,
                                                    "training_service": {"platform": "remote"}}}]).experiment
        if not _listening(next_port - 1):
            with pytest.raises(TrainingServiceUnavailable, match=r"experiment.port \+ 1 \(platform remote\)"):
                check_training_service(remote)


def test_a_manager_that_cannot_run_is_refused_in_one_line(tmp_path, monkeypatch):
    import nni_node

    monkeypatch.setattr(nni_node, "__path__", [str(tmp_path)])  # no node binary there
    with pytest.raises(TrainingServiceUnavailable, match="NNI's Node.js manager cannot run here .*engine: sequential"):
        check_training_service(load_config(None, [{"experiment": {"engine": "ts"}}]).experiment)
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(TrainingServiceUnavailable, match="exit status 3"):
        check_training_service(load_config(None, [{"experiment": {"engine": "ts"}}]).experiment)
