"""Import shim for ``benchmarks/gpu/check_imports.sh``: never on the GPU machine.

Loaded by a throw-away virtual environment (see check_imports.sh) in every Python process of a
smoke run, the benchmarks' subprocesses included (they inherit the environment and the
interpreter). It makes the modules named in ``GPU_CHECK_BLOCK`` (default: avalanche, nni,
pydantic, the ones the GPU machine's image lacks) fail to import, as they would there, except from
the folders named in ``GPU_CHECK_ALLOW`` (``:``-separated: the site folder that stage ``nas``
unpacks from what was carried, so the smoke run proves that folder is enough), and, with
``GPU_CHECK_IMPORT_LOG`` set, appends one line per process at exit: its pid, its command line
and the top-level modules it imported.
"""

import atexit
import os
import sys

_BLOCK = tuple(m for m in os.environ.get("GPU_CHECK_BLOCK", "avalanche,nni,pydantic").split(",") if m)
_ALLOW = tuple(os.path.realpath(d) for d in os.environ.get("GPU_CHECK_ALLOW", "").split(":") if d)


def _allowed(path) -> bool:
    return bool(_ALLOW) and any(os.path.realpath(p).startswith(_ALLOW) for p in path or ())


class _Blocker:
    """A meta-path finder that refuses the blocked top-level packages (except from ``_ALLOW``)."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCK:
            if path is not None and _allowed(path):
                return None  # a submodule of a package that came from an allowed folder
            if path is None and _ALLOW:
                from importlib.machinery import PathFinder

                spec = PathFinder.find_spec(name, [d for d in sys.path if _allowed([d])])
                if spec is not None:
                    return spec
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by benchmarks/gpu/importcheck: "
                                      f"absent on the GPU machine)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())

_LOG = os.environ.get("GPU_CHECK_IMPORT_LOG")
if _LOG:
    def _dump():
        def name(top):  # "nni@carried": imported from an allowed (carried) folder
            where = getattr(sys.modules.get(top), "__file__", None) or ""
            return top + "@carried" if _ALLOW and os.path.realpath(where).startswith(_ALLOW) else top

        tops = sorted({name(n.partition(".")[0]) for n in list(sys.modules) if n and not n.startswith("_")})
        argv = " ".join(sys.argv[:4])
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()}\t{argv}\t{' '.join(tops)}\n")

    atexit.register(_dump)
