"""Atomic file writing: a reader never sees a half-written set, checkpoint or report."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_json", "load_torch_file", "load_tagged_torch_file"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def load_torch_file(path: str | os.PathLike, what: str, error: type[Exception] = ValueError,
                    map_location="cpu"):
    """``torch.load(path, weights_only=True)`` whose failures are one line:
    ``<path> is not a <what> file: <why>`` (raised as ``error``).

    ``weights_only=True`` never runs code from the file; when it refuses one, the reason says so
    instead of passing on torch's advice to retry with ``weights_only=False`` (unsafe for a file
    of unknown origin).
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise error(f"{path} is not a {what} file: not a torch archive (truncated, or not written by torch.save)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise error(f"{path} is not a {what} file: it holds Python objects other than tensors and plain "
                    f"containers (not loaded, since unpickling them could run code)") from None
    except Exception as err:  # a damaged member of the archive, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise error(f"{path} is not a {what} file: damaged torch archive ({first})") from None


def load_tagged_torch_file(path: str | os.PathLike, what: str, error: type[Exception], fmt: str, version: int,
                           map_location="cpu") -> dict:
    """:func:`load_torch_file` of a dict written with ``format=fmt`` and ``format_version=version``
    (the project's own files: synthetic sets, expert trajectories); anything else is refused as
    ``error`` with one line naming the file and what is wrong."""
    payload = load_torch_file(path, what, error, map_location)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise error(f"{path} is not a {what} file: no {fmt!r} format tag")
    if payload.get("format_version") != version:
        raise error(f"{path} is not a {what} file: wrong format version {payload.get('format_version')!r} "
                    f"(this library reads version {version})")
    return payload
