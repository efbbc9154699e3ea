"""benchmarks/gpu/: the GPU session's script parses, and its Python glue runs on the CPU on a tiny
generated image folder (the real run needs a GPU and .gpu_data; see benchmarks/gpu/README.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_imagefolder import make_folder

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"


@pytest.mark.parametrize("script", ["run_all.sh", "pack_data.sh", "check_imports.sh", "pack_nas_site.sh"])
def test_shell_scripts_parse(script):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    proc = subprocess.run(["bash", "-n", str(GPU / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_mtt_cifar_glue_writes_a_labelled_truncated_result(tmp_path):
    from benchmarks.gpu.mtt_cifar import main

    root = make_folder(tmp_path / "data", per_class=(6, 3), size=8)
    out = tmp_path / "out"
    assert main(["--root", str(root), "--device", "cpu", "--threads", "1", "--ipc", "1", "--preset", "cpu-quick",
                 "--net", "convnet-w8-d2", "--experts", "1", "--expert-epochs", "5", "--zca", "on",
                 "--iterations", "2", "--chunk", "1", "--eval-networks", "2", "--eval-epochs", "1",
                 "--seconds", "120", "--eval-reserve", "5", "--out", str(out)]) == 0
    r = json.loads((out / "result.json").read_text())
    assert r["iterations_run"] == 2 and r["iterations_cap"] == 2 and r["preset_iterations"] == 50
    assert "TRUNCATED" in r["what"] and r["config"]["trajectory"]["zca"] is True
    assert r["config"]["trajectory"]["num_experts"] == 1 and r["config"]["trajectory"]["expert_train_epochs"] == 5
    assert len(r["accuracies"]) == 2 and r["eval_parallel"] == 2 and r["experts_seconds"] > 0
    assert (out / "set.pt").is_file() and json.loads((out / "progress.json").read_text())["iterations"] == 2


def test_envcheck_lists_packages_and_writes_the_missing_file(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(GPU / "envcheck.py"), "--json", str(tmp_path / "env.json"),
                           "--missing", str(tmp_path / "missing.txt")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "env.json").read_text())
    assert info["packages"]["torch"]["present"] and "version" in info["torch"]
    assert set(info["stage_imports"]) == {"2 matching_speed", "3 eval_speed", "4 mtt_memory", "5 mtt_cifar"}
    assert all(v == "ok" for v in info["stage_imports"].values()), info["stage_imports"]
    missing = (tmp_path / "missing.txt").read_text().split()
    assert "torch" not in missing and missing == info["missing"]


def test_import_check_blocks_except_from_the_carried_folder(tmp_path):
    """The smoke run's shim: a blocked package imports only from a GPU_CHECK_ALLOW folder (stage
    nas's unpacked site), is logged as name@carried there, and fails from anywhere else."""
    carried, elsewhere = tmp_path / "carried", tmp_path / "elsewhere"
    for folder, name in ((carried, "pkg_a"), (elsewhere, "pkg_b")):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text("")
        (folder / name / "sub.py").write_text("VALUE = 1\n")
    log = tmp_path / "imports.tsv"
    env = {**os.environ, "GPU_CHECK_BLOCK": "pkg_a,pkg_b", "GPU_CHECK_ALLOW": str(carried),
           "GPU_CHECK_IMPORT_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(GPU / "importcheck"), str(carried), str(elsewhere)])}
    code = ("import pkg_a.sub\nassert pkg_a.sub.VALUE == 1\n"
            "try:\n    import pkg_b.sub\nexcept ModuleNotFoundError as e:\n    print('refused:', e)\n"
            "else:\n    raise SystemExit('pkg_b imported')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "refused: No module named 'pkg_b' (blocked" in proc.stdout
    modules = log.read_text().split("\t")[-1].split()
    assert "pkg_a@carried" in modules and "pkg_b" not in modules
