"""``SyntheticSet``: a condensed (or selected) training set and everything needed to reuse it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .io import atomic_path, load_tagged_torch_file

__all__ = ["SyntheticSet", "CorruptSetError", "FORMAT"]

FORMAT = "dc-plugins/synthetic-set"
FORMAT_VERSION = 1


class CorruptSetError(ValueError):
    """A saved set cannot be read back: truncated, edited, or not a synthetic-set file."""


def _checksum(images: torch.Tensor, labels: torch.Tensor, meta: dict) -> str:
    h = hashlib.sha256()
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


@dataclass
class SyntheticSet:
    """Images ``(N, C, H, W)`` in the dataset's normalised space and their labels ``(N,)``.

    ``method``, ``dataset``, ``ipc``, ``config`` and ``seed`` say how it was made; ``mean``/``std``
    undo the normalisation for display. Classes are stored in blocks of ``ipc`` images.
    """

    images: torch.Tensor
    labels: torch.Tensor
    method: str
    dataset: str
    ipc: int
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    version: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            from . import __version__
            self.version = __version__
        if self.images.ndim != 4 or self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(f"inconsistent set: images {tuple(self.images.shape)}, labels {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def classes(self) -> list[int]:
        return sorted(set(self.labels.tolist()))

    def detach(self) -> "SyntheticSet":
        return self.replace_images(self.images.detach().clone())

    def replace_images(self, images: torch.Tensor) -> "SyntheticSet":
        return SyntheticSet(images, self.labels, self.method, self.dataset, self.ipc, self.seed,
                            dict(self.config), self.mean, self.std, self.version)

    def to(self, device) -> "SyntheticSet":
        s = self.replace_images(self.images.to(device))
        s.labels = self.labels.to(device)
        return s

    def check_compatible(self, channels: int, image_size: int, num_classes: int | None = None) -> None:
        """Raise a ``ValueError`` naming both shapes when this set cannot train the given model."""
        if self.channels != channels or self.image_size != image_size:
            raise ValueError(
                f"synthetic set ({self.dataset}, {self.method}) has {self.channels} channel(s) at "
                f"{self.image_size}x{self.image_size} px; the model expects {channels} channel(s) at "
                f"{image_size}x{image_size} px")
        if num_classes is not None and int(self.labels.max()) >= num_classes:
            raise ValueError(
                f"synthetic set has label {int(self.labels.max())}; the model has {num_classes} classes")

    # -- persistence --------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"method": self.method, "dataset": self.dataset, "ipc": self.ipc, "seed": self.seed,
                "config": self.config, "mean": list(self.mean), "std": list(self.std),
                "version": self.version}

    def save(self, path: str | os.PathLike) -> Path:
        """Write one file (atomically) with the tensors, the metadata and a SHA-256 checksum."""
        images, labels, meta = self.images.detach().cpu(), self.labels.detach().cpu(), self._meta()
        payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "images": images,
                   "labels": labels, "meta": json.dumps(meta, default=str),
                   "sha256": _checksum(images, labels, meta)}
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, map_location="cpu") -> "SyntheticSet":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no synthetic set at {str(path)!r}")
        payload = load_tagged_torch_file(path, "synthetic-set", CorruptSetError, FORMAT, FORMAT_VERSION,
                                         map_location)
        try:
            images, labels, meta = payload["images"], payload["labels"], json.loads(payload["meta"])
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptSetError(f"{path} is not a synthetic-set file: field {err} missing or unreadable") from None
        if _checksum(images, labels, meta) != payload.get("sha256"):
            raise CorruptSetError(f"{path} is not a synthetic-set file: checksum mismatch (modified or damaged)")
        return cls(images, labels, meta["method"], meta["dataset"], int(meta["ipc"]), int(meta["seed"]),
                   meta["config"], tuple(meta["mean"]), tuple(meta["std"]), meta["version"])

    # -- display ------------------------------------------------------------------------------
    def denormalised(self) -> torch.Tensor:
        x = self.images.detach().cpu().float()
        if self.mean and self.std:
            x = x * torch.tensor(self.std).view(1, -1, 1, 1) + torch.tensor(self.mean).view(1, -1, 1, 1)
        return x.clamp(0, 1)

    def save_grid(self, path: str | os.PathLike, *, scale: int = 2) -> Path:
        """A PNG with one row per class (``ipc`` images per row, sorted by label)."""
        from torchvision.utils import save_image

        order = torch.argsort(self.labels.cpu(), stable=True)
        x = self.denormalised()[order]
        if scale > 1:
            x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
        per_row = max(1, max(int((self.labels == c).sum()) for c in self.classes))
        path = Path(path)
        with atomic_path(path) as tmp:
            save_image(x, tmp, nrow=per_row, padding=2, pad_value=1.0, format="png")
        return path
