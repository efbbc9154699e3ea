import json
import subprocess
import sys

import torch

from dc_plugins.cli import main
from dc_plugins.synthetic import SyntheticSet


def test_cli_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("net: convnet-w16-d2\nmatching:\n  batch_real: 16\n")
    rc = main(["--config", str(cfg), "--method", "dsa", "--dataset", "digits", "--ipc", "2", "--iterations", "3",
               "--eval-networks", "2", "--eval-epochs", "5", "--out", str(out), "--no-progress", "--image-size", "8",
               "--set", "matching.lr_img=0.05"])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    for key in ("method", "dataset", "ipc", "iterations", "accuracy_mean", "accuracy_std", "accuracies",
                "seconds_per_iteration"):
        assert key in result
    assert (result["method"], result["dataset"], result["ipc"], result["iterations"]) == ("dsa", "digits", 2, 3)
    assert len(result["accuracies"]) == 2 and result["seconds_per_iteration"] > 0
    assert result["eval_lr"] == 0.01  # the protocol's lr: DSA learns no step size
    assert result["config"]["matching"]["lr_img"] == 0.05 and result["config"]["matching"]["batch_real"] == 16
    syn = SyntheticSet.load(out / "set.pt")
    assert syn.images.shape == (20, 1, 8, 8) and syn.method == "dsa"
    assert (out / "grid.png").stat().st_size > 0
    assert "dsa digits ipc=2" in capsys.readouterr().out


def test_result_json_records_the_dc_loops_executed(tmp_path):
    out = tmp_path / "run"
    # ipc 2 on digits: the dc_loops rule gives (2, 6); the run does 1 iteration = 2 image updates
    # and 6 inner epochs (the old code ran the ipc-1 recipe: 1 update, no inner epoch).
    assert main(["--method", "dc", "--dataset", "digits", "--ipc", "2", "--iterations", "1", "--image-size", "8",
                 "--eval-networks", "0", "--out", str(out), "--no-progress", "--net", "convnet-w4-d1",
                 "--batch-real", "4"]) == 0
    loops = json.loads((out / "result.json").read_text())["loops"]
    assert loops == {"outer_loop": 2, "inner_loop": 6, "source": "dc_loops rule", "iterations": 1,
                     "matching_steps": 2, "inner_epochs": 6}
    assert SyntheticSet.load(out / "set.pt").config["loops"] == loops


def test_cli_resume_gives_the_set_of_an_uninterrupted_run(tmp_path, monkeypatch):
    # Bitwise: 2 iterations, then --resume to 4, against 4 in one go. The old test only read the
    # checkpoint's iteration counter, which a resume that restarted from scratch also reaches.
    # DC at ipc 2 (two outer steps with inner epochs in between), so the generator state, the
    # optimiser's momentum and the images must all come back for the sets to be equal.
    args = ["--method", "dc", "--dataset", "digits", "--ipc", "2", "--image-size", "8", "--eval-networks", "0",
            "--no-progress", "--net", "convnet-w4-d1", "--batch-real", "4", "--set", "matching.inner_loop=1"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(args + ["--iterations", "4", "--out", str(whole)]) == 0
    assert main(args + ["--iterations", "2", "--out", str(parts)]) == 0
    assert not torch.equal(SyntheticSet.load(whole / "set.pt").images, SyntheticSet.load(parts / "set.pt").images)
    assert main(args + ["--iterations", "4", "--out", str(parts), "--resume"]) == 0
    assert torch.equal(SyntheticSet.load(whole / "set.pt").images, SyntheticSet.load(parts / "set.pt").images)
    assert torch.load(parts / "checkpoint.pt", weights_only=True)["iteration"] == 4
    a, b = (json.loads((p / "result.json").read_text()) for p in (whole, parts))
    assert a["config_hash"] == b["config_hash"] and len(a["config_hash"]) == 64
    assert a["loops"] == b["loops"] and b["loops"]["matching_steps"] == 8
    assert b["accuracy_mean"] is None


def test_cli_resume_of_another_configuration_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--method", "dm", "--dataset", "digits", "--ipc", "1", "--eval-networks", "0", "--out", str(out),
            "--no-progress", "--net", "convnet-w8-d1"]
    assert main(args + ["--iterations", "2"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert main(args + ["--iterations", "4", "--resume", "--set", "matching.lr_img=0.5", "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is of another configuration" in err, err
    assert "matching.lr_img: 1.0 -> 0.5" in err and "seed: 0 -> 3" in err
    assert (out / "checkpoint.pt").read_bytes() == before  # the refused run wrote nothing
    # Settings that cannot change the set (progress, checkpoint interval, device) resume fine.
    assert main(args + ["--iterations", "4", "--resume", "--device", "cpu", "--set", "checkpoint_minutes=1"]) == 0


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["--method", "gan", "--out", str(tmp_path)]) == 2
    assert "unknown method 'gan'" in capsys.readouterr().err
    assert main(["--dataset", "mnist", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "mnist: files not found under root" in err and "nowhere" in err


def test_python_dash_m_entry_point_prints_resolved_config():
    out = subprocess.run([sys.executable, "-m", "dc_plugins", "--method", "dm", "--preset", "cpu-quick",
                          "--print-config"], capture_output=True, text=True, check=True).stdout
    cfg = json.loads(out)
    assert cfg["iterations"] == 200 and cfg["matching"]["lr_img"] == 1.0
