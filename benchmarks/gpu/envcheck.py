"""Stage 1 of ``benchmarks/gpu/run_all.sh``: what the machine has, before any benchmark runs.

    PYTHONPATH=. python benchmarks/gpu/envcheck.py --json env.json --missing missing.txt

Prints Python, torch, CUDA, cuDNN and GPU versions, which of the packages the stages use are
importable (with versions), and whether the modules each stage imports load without them
(avalanche and nni are never needed: the engine imports them lazily). Writes the same as JSON,
and the names of the missing packages, one per line, to ``--missing`` (read by run_all.sh to
skip or degrade the stages that need them). Installs nothing. Exit status 0 unless torch itself
is missing (3).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# package -> what needs it (run_all.sh's stage numbers)
PACKAGES = {
    "torch": "everything",
    "numpy": "everything (dc_plugins.data imports it)",
    "yaml": "everything (dc_plugins.config -> dc_plugins.settings imports it; pyyaml)",
    "tqdm": "everything that trains (progress bars are built even when disabled)",
    "torchvision": "real data: MNIST-10k (stages 3, 4) and JPEG decoding (stages 2, 5); without it stage 2 "
                   "falls back to --data generated and stages 3-5 are skipped",
    "PIL": "torchvision.datasets (MNIST)",
    "pytest": "stage t (tests/test_cuda.py) only",
    "pydantic": "only dc-condense's flag parsing (not used here: stage 5 builds its RunConfig in Python)",
    "scipy": "not used by these stages",
    "sklearn": "not used by these stages (the 'digits' dataset only)",
    "avalanche": "not used by these stages (continual learning only)",
    "nni": "not used by these stages (NAS only)",
}
REQUIRED = ("torch", "numpy", "yaml", "tqdm")
# the modules each stage's processes import (checked by importing them here)
STAGE_MODULES = {
    "2 matching_speed": ["benchmarks.matching_speed", "dc_plugins.condense", "dc_plugins.matching",
                         "dc_plugins.trajectories", "dc_plugins.imagefolder"],
    "3 eval_speed": ["benchmarks.eval_speed", "dc_plugins.evaluation", "dc_plugins.stacked",
                     "dc_plugins.synthetic", "torch.utils.flop_counter"],
    "4 mtt_memory": ["benchmarks.mtt_memory", "dc_plugins.augment", "dc_plugins.matching.trajectory"],
    "5 mtt_cifar": ["dc_plugins.cli", "dc_plugins.zca", "dc_plugins.evaluation"],
}


def version_of(name: str) -> str | None:
    try:
        mod = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001  any failure to import counts as missing
        return f"IMPORT FAILED: {type(err).__name__}: {err}"
    return str(getattr(mod, "__version__", getattr(mod, "VERSION", "?")))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", required=True)
    p.add_argument("--missing", required=True)
    args = p.parse_args()
    info: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": sys.version,
                  "executable": sys.executable, "platform": platform.platform(), "packages": {}, "missing": [],
                  "stage_imports": {}}
    for name, why in PACKAGES.items():
        try:
            present = importlib.util.find_spec(name) is not None
        except Exception:  # noqa: BLE001  a broken (or, in check_imports.sh, blocked) package
            present = False
        ver = version_of(name) if present else None
        ok = present and not str(ver).startswith("IMPORT FAILED")
        info["packages"][name] = {"present": ok, "version": ver, "needed_for": why}
        if not ok and name not in ("scipy", "sklearn", "avalanche", "nni", "pydantic"):
            info["missing"].append(name)
        print(f"package {name:12s} {'ok ' + str(ver) if ok else 'MISSING' + (f' ({ver})' if ver else '')}"
              f"  -- {why}")
    if info["packages"]["torch"]["present"]:
        import torch

        cuda = torch.cuda.is_available()
        info["torch"] = {"version": torch.__version__, "cuda_build": torch.version.cuda,
                         "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                         "cuda_available": cuda, "threads": torch.get_num_threads(),
                         "device_count": torch.cuda.device_count() if cuda else 0}
        if cuda:
            prop = torch.cuda.get_device_properties(0)
            info["torch"].update(device=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                                 memory_gib=round(prop.total_memory / 2 ** 30, 1),
                                 multiprocessors=prop.multi_processor_count)
            t = time.perf_counter()
            torch.ones(1, device="cuda").sum().item()
            info["torch"]["first_cuda_op_seconds"] = round(time.perf_counter() - t, 3)
        print("torch", json.dumps(info["torch"]))
    for stage, mods in STAGE_MODULES.items():
        errors = {}
        for m in mods:
            try:
                importlib.import_module(m)
            except Exception:  # noqa: BLE001
                errors[m] = traceback.format_exc(limit=2).strip().splitlines()[-1]
        info["stage_imports"][stage] = errors or "ok"
        print(f"stage {stage}: imports " + ("ok" if not errors else "FAILED: " + json.dumps(errors)))
    for blocked in ("avalanche", "nni"):
        if blocked in sys.modules:
            print(f"note: {blocked} got imported by the stages' modules (it should not be)")
            info.setdefault("unexpected_imports", []).append(blocked)
    Path(args.json).write_text(json.dumps(info, indent=2) + "\n")
    Path(args.missing).write_text("".join(m + "\n" for m in info["missing"]))
    if info["missing"]:
        print("MISSING packages: " + " ".join(info["missing"]) + " (nothing is installed; stages that need them "
              "are skipped or degraded, see the log)")
    return 3 if not info["packages"]["torch"]["present"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
