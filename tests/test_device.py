"""Device strings and CPU thread limits."""

from __future__ import annotations

import pytest
import torch

from dc_plugins.device import resolve_device, torch_threads


def test_resolve_device_names_what_is_allowed():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu0'; allowed: auto, cpu, cuda, cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_torch_threads_limits_inside_and_restores_after_errors():
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(wanted):
            assert torch.get_num_threads() == wanted
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1.*got 0"):
        with torch_threads(0):
            pass


def test_tune_malloc_is_opt_out_by_environment_and_refuses_bad_thresholds(monkeypatch):
    # Run in a subprocess: mallopt changes the whole process.
    import subprocess
    import sys

    code = "from dc_plugins.device import tune_malloc; print(tune_malloc(), tune_malloc(0), tune_malloc(2 ** 40))"
    env = {k: v for k, v in __import__("os").environ.items() if k != "DC_PLUGINS_MALLOC"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    import platform

    expected_first = "True" if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" else "False"
    assert out.split() == [expected_first, "False", "False"]
    env["DC_PLUGINS_MALLOC"] = "default"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split()[0] == "False"


def test_machine_info_names_cpu_torch_and_threads():
    from dc_plugins.device import machine_info

    info = machine_info()
    assert info["torch"] == torch.__version__ and info["threads"] == torch.get_num_threads()
    assert isinstance(info["cpu"], str) and info["cpu"] and info["cpu_count"] >= 1
    assert info["memory_gb"] is None or info["memory_gb"] > 0
    with torch_threads(1):
        assert machine_info()["threads"] == 1
