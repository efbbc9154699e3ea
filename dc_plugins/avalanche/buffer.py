"""``CondensedBuffer``: an Avalanche ``ExemplarsBuffer`` that stores condensed images.

After each experience (``post_adapt``), the experience's data is read into tensors and
condensed, one task at a time, into synthetic images of each of its classes with the engine
(DC, DSA, DM, or a coreset baseline). The memory is kept class-balanced:

* **Groups.** A group is one class of one experience, keyed ``(experience, task, class)``: in
  class-incremental streams that is one class; in domain-incremental streams the same digit
  in a later domain is a new group, so each domain keeps its own condensed images of it.
* **Budget.** ``mem_size`` is a hard limit on the number of items. Without ``ipc`` every group
  gets the equal share ``mem_size // groups``; when new groups arrive, the share shrinks and
  older groups are **trimmed** (their first images are kept; for coreset methods that is the
  head of the selection order). With ``ipc`` each group keeps ``ipc`` images and the memory
  grows; if ``ipc * groups`` would exceed ``mem_size`` the equal share is used instead (a
  warning says so). Fewer than one image per group is an error.
* **Small classes.** A class with no more real images than its share is stored as its real
  images (all of them, a warning says so); it is not condensed, and its spare slots stay empty.

The buffer's items have the stream's tuple structure and types (see :mod:`.items`), so it can be
given as ``storage_policy`` to Avalanche's ``ReplayPlugin`` or used through
:class:`~dc_plugins.avalanche.CondensedReplayPlugin`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from avalanche.training.storage_policy import ExemplarsBuffer

from ..coreset import CoresetSelector
from ..data import ClassIndex
from ..matching import DistributionMatcher, GradientMatcher
from ..models import ConvNetSpec
from ..synthetic import CorruptSetError, SyntheticSet
from .config import CondensedReplayConfig
from .items import TASK_ATTR, ItemLayout, materialise, memory_dataset

__all__ = ["CondensedBuffer", "MemoryTooSmallError", "GroupKey"]

GroupKey = tuple[int, int, int]  # (experience, task label, class id)


class MemoryTooSmallError(ValueError):
    """``mem_size`` cannot hold one image for every class seen so far."""


def _experience_id(exp: Any, fallback: int) -> int:
    value = getattr(exp, "current_experience", None)
    return int(value) if value is not None else fallback


def _group_keys(dataset, exp_id: int) -> set[GroupKey]:
    """The (experience, task, class) groups of an experience, from its data attributes only."""
    if not hasattr(dataset, "targets"):
        raise ValueError("the experience dataset has no `targets`; the condensed memory needs class labels")
    targets = [int(v) for v in dataset.targets]
    tasks = [int(v) for v in getattr(dataset, TASK_ATTR)] if hasattr(dataset, TASK_ATTR) else [0] * len(targets)
    return {(exp_id, t, c) for t, c in zip(tasks, targets)}


class CondensedBuffer(ExemplarsBuffer):
    """Rehearsal memory of condensed images, class-balanced, never above ``max_size`` items.

    Args:
        max_size: the memory budget in images (``mem_size`` of ``ReplayPlugin``).
        config: a :class:`CondensedReplayConfig`; keyword ``overrides`` replace its fields
            (``method="dm"``, ``ipc=10``, ``iterations=200``, ...).

    >>> buffer = CondensedBuffer(200, method="dm", iterations=200, preset="cpu-quick")
    >>> replay = ReplayPlugin(mem_size=200, storage_policy=buffer)
    """

    def __init__(self, max_size: int, config: CondensedReplayConfig | None = None, **overrides: Any):
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
            raise ValueError(f"mem_size must be a positive integer, got {max_size!r}")
        super().__init__(max_size)
        self.config = (config or CondensedReplayConfig()).replace(**overrides)
        self.groups: dict[GroupKey, torch.Tensor] = {}
        self.layout: ItemLayout | None = None
        self.history: list[dict] = []
        self._dataset = None
        self._warned_ipc = False

    # -- the memory as an Avalanche dataset ----------------------------------------------------
    @property
    def buffer(self):
        if not self.groups:
            return self._buffer  # the empty dataset ExemplarsBuffer starts with
        if self._dataset is None:
            keys = list(self.groups)
            images = torch.cat([self.groups[k] for k in keys])
            targets = [k[2] for k in keys for _ in range(self.groups[k].shape[0])]
            tasks = [k[1] for k in keys for _ in range(self.groups[k].shape[0])]
            self._dataset = memory_dataset(images, targets, tasks, self.layout)
        return self._dataset

    @buffer.setter
    def buffer(self, value) -> None:
        raise AttributeError("CondensedBuffer.buffer is built from its groups; change `groups` "
                             "(a dict (experience, task, class) -> images) instead")

    def __len__(self) -> int:
        return sum(v.shape[0] for v in self.groups.values())

    def class_counts(self) -> dict[tuple[int, int], int]:
        """Images per (task, class), summed over experiences."""
        counts: dict[tuple[int, int], int] = {}
        for (_, t, c), v in self.groups.items():
            counts[(t, c)] = counts.get((t, c), 0) + v.shape[0]
        return counts

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_dataset"] = None  # rebuilt on demand; keeps checkpoints small
        return state

    # -- the budget -----------------------------------------------------------------------------
    def share(self, n_groups: int) -> int:
        """Images per group when ``n_groups`` groups share the memory (see the module doc)."""
        if n_groups > self.max_size:
            raise MemoryTooSmallError(
                f"mem_size={self.max_size} is smaller than the number of classes seen so far "
                f"({n_groups}, counting each class of each experience): the memory cannot keep one "
                f"image per class. Allowed: mem_size >= {n_groups}")
        equal = self.max_size // max(n_groups, 1)
        ipc = self.config.ipc
        if ipc is None:
            return equal
        if ipc > equal:
            if not self._warned_ipc:
                warnings.warn(f"ipc={ipc} for {n_groups} classes needs {ipc * n_groups} images, more than "
                              f"mem_size={self.max_size}; falling back to the equal share of {equal} per class",
                              stacklevel=3)
                self._warned_ipc = True
            return equal
        return ipc

    def check_experience(self, exp: Any) -> int:
        """Validate the budget for the groups ``exp`` will add, before training on it.

        Returns the share per group after the experience; raises :class:`MemoryTooSmallError`.
        """
        exp_id = _experience_id(exp, len({k[0] for k in self.groups}))
        new = _group_keys(exp.dataset, exp_id)
        old = [k for k in self.groups if k[0] != exp_id]
        return self.share(len(old) + len(new))

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the budget; groups are trimmed to the new share."""
        if isinstance(new_size, bool) or not isinstance(new_size, int) or new_size <= 0:
            raise ValueError(f"mem_size must be a positive integer, got {new_size!r}")
        old_size = self.max_size
        self.max_size = new_size
        try:
            share = self.share(len(self.groups))
        except MemoryTooSmallError:
            self.max_size = old_size
            raise
        self._trim(share)

    def _trim(self, share: int) -> None:
        for key, images in self.groups.items():
            if images.shape[0] > share:
                self.groups[key] = images[:share].clone()
        self._dataset = None

    # -- updating after an experience ----------------------------------------------------------
    def post_adapt(self, agent: Any, exp: Any) -> None:
        """Condense ``exp`` into the memory (replacing its groups if it was seen before)."""
        layout = ItemLayout.of(exp.dataset.eval() if hasattr(exp.dataset, "eval") else exp.dataset)
        if self.layout is not None and layout.signature != self.layout.signature:
            raise ValueError(f"experience items {layout.signature} differ from the earlier ones "
                             f"{self.layout.signature}; one memory needs one item structure")
        exp_id = _experience_id(exp, len({k[0] for k in self.groups}))
        share = self.check_experience(exp)
        data = materialise(exp.dataset)
        device = torch.device(self.config.device or getattr(agent, "device", None) or "cpu")
        new_groups: dict[GroupKey, torch.Tensor] = {}
        for task in sorted(set(data.tasks.tolist())):
            mask = data.tasks == task
            per_class = self._condense_task(data.images[mask], data.targets[mask], share, device,
                                            seed=self.config.seed + 7919 * exp_id + task,
                                            where=f"experience {exp_id}, task {task}")
            for c, images in per_class.items():
                new_groups[(exp_id, task, c)] = images
        self.groups = {k: v for k, v in self.groups.items() if k[0] != exp_id}
        self._trim(share)
        self.groups.update(new_groups)
        self.layout = layout
        self._dataset = None
        assert len(self) <= self.max_size, (len(self), self.max_size)

    def _condense_task(self, images: torch.Tensor, targets: torch.Tensor, share: int, device: torch.device,
                       *, seed: int, where: str) -> dict[int, torch.Tensor]:
        classes = sorted(set(targets.tolist()))
        counts = {c: int((targets == c).sum()) for c in classes}
        out: dict[int, torch.Tensor] = {}
        small = [c for c in classes if counts[c] <= share]
        if small:
            warnings.warn(f"{where}: classes {small} have no more real images ({[counts[c] for c in small]}) "
                          f"than their share of {share}; they are stored as their real images, not condensed",
                          stacklevel=4)
            for c in small:
                out[c] = images[targets == c].clone()
        big = [c for c in classes if counts[c] > share]
        if not big:
            return out
        local = torch.full_like(targets, -1)
        for i, c in enumerate(big):
            local[targets == c] = i
        keep = local >= 0
        start = time.perf_counter()
        syn, cached = self._synthesise(images[keep], local[keep], len(big), share, device, seed)
        self.history.append({"where": where, "method": self.config.method, "ipc": share,
                             "classes": big, "seconds": round(time.perf_counter() - start, 3),
                             "cached": cached})
        labels = syn.labels.cpu()
        for i, c in enumerate(big):
            out[c] = syn.images[labels == i].detach().cpu().clone()
        return {c: out[c] for c in classes}

    def _condenser(self, index: ClassIndex, ipc: int, seed: int):
        cfg = self.config.resolved(ipc)
        images = index.images
        # At least two outputs: with one class the cross-entropy (and its gradient) is zero.
        spec = ConvNetSpec.parse(cfg.net).with_data(images.shape[1], max(2, index.num_classes), images.shape[-1])
        common = dict(spec=spec, seed=seed, dataset="avalanche-experience", mean=(), std=())
        if cfg.method in ("dc", "dsa"):
            return GradientMatcher(index, ipc, config=cfg.matching, dsa=cfg.method == "dsa",
                                   flip=self.config.flip, **common), cfg
        if cfg.method == "dm":
            return DistributionMatcher(index, ipc, config=cfg.matching, dsa=True, flip=self.config.flip,
                                       **common), cfg
        return CoresetSelector(cfg.method, index, ipc, config=cfg.selection, **common), cfg

    def _synthesise(self, images: torch.Tensor, labels: torch.Tensor, k: int, ipc: int,
                    device: torch.device, seed: int) -> tuple[SyntheticSet, bool]:
        index = ClassIndex(images.to(device), labels.to(device), k)
        condenser, cfg = self._condenser(index, ipc, seed)
        path = self._cache_path(images, labels, ipc, seed, cfg)
        if path is not None and path.is_file():
            try:
                return SyntheticSet.load(path), True
            except CorruptSetError as err:
                warnings.warn(f"ignoring unreadable cached set {str(path)!r}: {err}", stacklevel=2)
        syn = condenser.run(cfg.iterations, progress=self.config.progress)
        if path is not None:
            syn.save(path)
        return syn, False

    def _cache_path(self, images: torch.Tensor, labels: torch.Tensor, ipc: int, seed: int, cfg) -> Path | None:
        if not self.config.cache_dir:
            return None
        h = hashlib.sha256()
        h.update(images.detach().cpu().contiguous().numpy().tobytes())
        h.update(labels.detach().cpu().contiguous().numpy().tobytes())
        # only what shapes the set: unrelated engine defaults may change without invalidating it
        settings = {"method": cfg.method, "ipc": ipc, "iterations": cfg.iterations, "net": cfg.net,
                    "matching": dataclasses.asdict(cfg.matching), "selection": dataclasses.asdict(cfg.selection),
                    "seed": seed, "flip": self.config.flip}
        h.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return Path(self.config.cache_dir) / f"{cfg.method}-ipc{ipc}-{h.hexdigest()[:20]}.pt"
