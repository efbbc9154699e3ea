"""Fingerprints of what a result depends on, so that a resume never mixes configurations.

A *fingerprint* is a JSON-able mapping of every setting that can change a result (method, data,
ipc, seed, network, matching / selection / evaluation settings, and a SHA-256 of the data); its
*hash* is stored next to it in checkpoints and ``result.json``. Resuming from, or reusing, a file
whose fingerprint differs is refused with :class:`ConfigMismatchError`, naming the differing
fields as ``field: old -> new``.

Left out on purpose, since they cannot change the result: where files go (``out``, ``root``:
the data hash covers the data itself), progress bars, ``checkpoint_minutes``, ``download``, and
the device (a CPU and a GPU run of one configuration differ only by float rounding; moving a
checkpoint to a GPU and resuming there is allowed) and, for the same reason, ``eval.parallel``
(how many evaluation networks train together as one stacked model). For a matcher checkpoint also the number of
iterations (resuming to a larger total is what resume is for) and the evaluation settings (they
act after the condensation).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import torch

__all__ = ["ConfigMismatchError", "data_fingerprint", "config_hash", "config_diff", "check_fingerprint"]


class ConfigMismatchError(ValueError):
    """A checkpoint or finished result belongs to another configuration."""


def data_fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-256 (hex) over the tensors' shapes, dtypes and bytes (on the CPU)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def config_hash(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for key, value in d.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text[:12] if isinstance(value, str) and len(value) == 64 else text  # data hashes: 12 hex


def config_diff(old: dict, new: dict) -> list[str]:
    """``["matching.lr_img: 0.1 -> 0.05", ...]`` for every field whose value differs."""
    a, b = _flatten(old), _flatten(new)
    missing = object()
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            diffs.append(f"{key}: {'(absent)' if va is missing else _short(va)} -> "
                         f"{'(absent)' if vb is missing else _short(vb)}")
    return diffs


def check_fingerprint(stored: dict | None, current: dict, what: str, remedy: str) -> None:
    """Raise :class:`ConfigMismatchError` (one line) unless ``stored`` equals ``current``."""
    if stored is None:
        raise ConfigMismatchError(f"{what} has no configuration fingerprint (written by an older version); "
                                  f"{remedy}")
    diffs = config_diff(stored, current)
    if diffs:
        raise ConfigMismatchError(f"{what} is of another configuration ({'; '.join(_limit(diffs))}); {remedy}")


def _limit(diffs: Iterable[str], n: int = 8) -> list[str]:
    diffs = list(diffs)
    return diffs if len(diffs) <= n else diffs[:n] + [f"and {len(diffs) - n} more"]
