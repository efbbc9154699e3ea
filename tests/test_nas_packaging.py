"""The configs that ``dc-nas`` and the docs name ship inside the package: build the wheel, install
it into an empty folder, and run the installed ``dc-nas --config nas_offline_reduced
--print-config`` with that folder as the only copy of the project on ``sys.path`` and the working
directory elsewhere (no checkout to fall back on)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from nas.cli import main
from nas.config import load_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dc_plugins", "nas", "strategies")  # pyproject's [tool.setuptools.packages.find]


def _shipped_configs() -> dict[str, Path]:
    """Every YAML config of the source tree, by its path inside the wheel."""
    return {path.relative_to(ROOT).as_posix(): path for package in PACKAGES
            for path in sorted((ROOT / package / "configs").glob("*.yaml"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, target): the project's wheel, built offline from a copy of the sources, and the
    folder it is pip-installed into."""
    try:
        setuptools_version = version("setuptools")
    except PackageNotFoundError:
        setuptools_version = "0"
    if int(setuptools_version.split(".")[0]) < 68:
        pytest.skip(f"building the wheel offline needs setuptools>=68 (pyproject's build-system) in this "
                    f"environment; found {setuptools_version}")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp / "dist"),
                          str(src)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp / "dist").glob("dc_plugins-*.whl")
    target = tmp / "target"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    return wheel, target


@pytest.mark.slow
def test_the_wheel_carries_every_config_and_the_entry_points(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        shipped = _shipped_configs()
        assert {"nas/configs/nas_offline_reduced.yaml", "nas/configs/nas_cifar10_full.yaml"} <= set(shipped)
        assert set(shipped) <= names, sorted(set(shipped) - names)
        assert all(z.read(name) == path.read_bytes() for name, path in shipped.items())
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "dc-nas = nas.cli:main" in entry_points and "dc-condense = dc_plugins.cli:main" in entry_points


@pytest.mark.slow
def test_installed_dc_nas_reads_a_packaged_config_by_name(installed, tmp_path):
    _, target = installed
    script = target / "bin" / "dc-nas"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed console script, run with the installed packages only (they come first on
    # sys.path; the environment's own site-packages provide torch, NNI, PyYAML); report where
    # nas came from.
    code = ("import runpy, sys; import nas, dc_plugins; print(nas.__file__, dc_plugins.__file__, file=sys.stderr); "
            f"sys.argv = [{str(script)!r}, '--config', 'nas_offline_reduced', '--print-config']; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    env = dict(os.environ, PYTHONPATH=str(target))
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{target}/nas/__init__.py {target}/dc_plugins/__init__.py" in done.stderr
    printed = json.loads(done.stdout)
    assert printed == load_config(ROOT / "nas" / "configs" / "nas_offline_reduced.yaml").to_dict()
    assert printed["data"]["dataset"] == "usps" and printed["space"]["max_archs"] == 120
    assert not any(elsewhere.iterdir())  # --print-config writes nothing


def test_printed_config_is_a_config_file(tmp_path, capsys):
    """README: ``dc-nas --config nas_offline_reduced --print-config > my.yaml`` starts a config of one's own."""
    assert main(["--config", "nas_offline_reduced", "--print-config"]) == 0
    printed = capsys.readouterr().out
    mine = tmp_path / "my.yaml"
    mine.write_text(printed)
    assert main(["--config", str(mine), "--set", "train.epochs=7", "--print-config"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == dict(json.loads(printed), train=dict(json.loads(printed)["train"], epochs=7))
