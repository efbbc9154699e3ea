"""The real data of a NAS run: a training part (proxies come from it, whole-set trials train on
it) and held-out validation images every trial is scored on.

Trials receive only the small :class:`~nas.config.DataConfig` (NNI pickles evaluator arguments)
and load the tensors themselves; within one process the split is loaded once and reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from dc_plugins.data import ImageDataset, load_dataset, make_generator, subsample_per_class

from dc_plugins.device import resolve_device

from .config import DataConfig

__all__ = ["DataSplit", "load_split", "stratified_split", "data_fingerprint", "resolve_device", "with_absolute_root"]

_CACHE: dict[str, "DataSplit"] = {}


@dataclass
class DataSplit:
    train: ImageDataset
    val: ImageDataset
    config: DataConfig

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> int:
        return self.train.image_size

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def describe(self) -> dict:
        return {"dataset": self.train.info.name, "train_images": len(self.train), "val_images": len(self.val),
                "channels": self.channels, "image_size": self.image_size, "num_classes": self.num_classes,
                "validation": self.config.validation, "train_per_class": self.config.train_per_class}


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices: ``ceil(fraction * n_c)`` random images of each class ``c`` are
    held out (at least one, and at least one kept), drawn from ``torch.Generator(seed)``."""
    g = make_generator(seed)
    labels = labels.cpu()
    keep, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c, as_tuple=False).flatten()
        if idx.numel() < 2:
            raise ValueError(f"class {c} has {idx.numel()} image(s); a validation split needs at least 2")
        perm = idx[torch.randperm(idx.numel(), generator=g)]
        n_val = min(max(1, math.ceil(fraction * idx.numel() - 1e-9)), idx.numel() - 1)
        held.append(perm[:n_val])
        keep.append(perm[n_val:])
    return torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values


def with_absolute_root(config: DataConfig) -> DataConfig:
    """``config`` with ``root`` made absolute (``~`` expanded): trials read the data by this path
    from their own working directory, which differs under NNI's training services (and lies on
    another machine, with the same paths, for remote ones)."""
    if not config.root:
        return config
    return dataclasses.replace(config, root=str(Path(config.root).expanduser().resolve()))


def load_split(config: DataConfig, device: torch.device | str = "cpu") -> DataSplit:
    """Load the training part and the validation images (cached per process); with
    ``train_per_class`` the training part keeps that many images of each class, drawn with
    ``split_seed`` after the validation images are set aside."""
    key = json.dumps([dataclasses.asdict(config), str(device)], sort_keys=True)
    if key in _CACHE:
        return _CACHE[key]
    kw = dict(image_size=config.image_size, channels=config.channels, download=config.download, device=device)
    full = load_dataset(config.dataset, config.root, True, **kw)
    if config.validation == "test":
        split = DataSplit(full, load_dataset(config.dataset, config.root, False, **kw), config)
    elif config.validation == "split":
        keep, held = stratified_split(full.labels, config.val_fraction, config.split_seed)
        val = full.subset(held)
        val.split = "val"
        split = DataSplit(full.subset(keep), val, config)
    else:
        raise ValueError(f"data.validation must be 'split' or 'test', got {config.validation!r}")
    if config.train_per_class is not None:
        split.train = _limit_per_class(split.train, config.train_per_class, config.split_seed)
    _CACHE.clear()  # keep one split per process: datasets can be large
    _CACHE[key] = split
    return split


def _limit_per_class(train: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    counts = torch.bincount(train.labels.cpu(), minlength=train.num_classes)
    smallest = int(counts.min())
    if not 1 <= per_class <= smallest:
        raise ValueError(f"data.train_per_class={per_class}: the training part of {train.info.name} has "
                         f"{smallest} images in its smallest class (class {int(counts.argmin())}); "
                         f"allowed: 1..{smallest}, or null for every image")
    return subsample_per_class(train, per_class, make_generator(seed))


def data_fingerprint(split: DataSplit) -> str:
    """SHA-256 over the training part's tensors: part of every proxy's cache key, so a proxy
    is rebuilt when the underlying data changes, not only when the config does."""
    h = hashlib.sha256()
    h.update(split.train.images.detach().cpu().contiguous().numpy().tobytes())
    h.update(split.train.labels.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
