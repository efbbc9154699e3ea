"""``CondensedBuffer``: an Avalanche ``ExemplarsBuffer`` that stores condensed images.

After each experience (``post_adapt``), the experience's data is read into tensors (eval
transforms) and condensed, one task at a time, into synthetic images of each of its classes
with the engine (DC, DSA, DM), or a coreset of real exemplars is selected (random, herding,
k-center, forgetting). The memory is kept class-balanced:

* **Groups.** A group is one class of one experience, keyed ``(experience, task, class)``: in
  class-incremental streams that is one class; in domain-incremental streams the same digit
  in a later domain is a new group, so each domain keeps its own images of it.
* **Budget.** ``mem_size`` is a hard limit on the number of items, and every slot is used:
  ``mem_size`` is divided as Avalanche's balanced buffers divide it (``mem_size // groups``
  each, the remainder one by one to the earliest groups; ``mem_size=23`` and 10 classes keep
  3, 3, 3, 2, ..., 2 = 23 images).

  - When the stream's number of groups is known (``total_classes``: given, or read from the
    experience's stream, ``exp.origin_stream``, which Avalanche's benchmarks expose), each
    group is condensed **once, at the share it will finally have**; nothing is trimmed later.
  - Otherwise (``total_classes="adaptive"``, or a stream generator) every group gets its share
    of the groups seen so far, and when the share shrinks the buffer **re-selects**: coreset
    groups keep the head of their selection order (random, herding, k-center and forgetting
    all rank greedily, so the head is that method's selection at the smaller size); condensed
    groups and small classes keep the images chosen by herding on their flattened pixels
    (greedy matching of the group's mean image). A re-selected condensed group is a subset of
    a condensed set, not a set condensed at the smaller size: give ``total_classes`` when the
    stream does not expose it.
  - With ``ipc`` each group keeps ``ipc`` images and the memory grows; if ``ipc`` times the
    groups (all of the stream's when known) would exceed ``mem_size`` the equal share is used
    instead (a warning says so).
  - Fewer than one image per group is a :class:`MemoryTooSmallError`.
* **Small classes.** A class with no more real images than its share is stored as its real
  images (all of them, a warning says so); it is not condensed, and its spare slots stay empty.
* **Replay transforms.** Real exemplars (coreset methods, small classes) are replayed as
  ``exp.dataset.subset(indices)``, through the stream's own transform groups, as Avalanche's
  buffers replay them. Condensed images are tensors in the stream's normalised space; they are
  replayed through ``memory_transform`` (DSA by default) in train mode and as stored in eval
  mode (see :mod:`.transforms`).
* **Checks before training.** :meth:`CondensedBuffer.check_experience` validates the budget
  and the experience's items (tuple structure, square ``(C, H, W)`` float images of the
  memory's shape, large enough for the condensation network) before the experience trains:
  ``CondensedReplayPlugin`` calls it in ``before_training_exp``; Avalanche's ``Agent`` calls
  :meth:`~CondensedBuffer.pre_adapt`. Given to Avalanche's plain ``ReplayPlugin``, the buffer
  checks when ``ReplayPlugin.before_training_exp`` reads ``storage_policy.buffer`` (the first
  thing it does, before any training step) using the strategy it saw in ``post_adapt``: that
  covers every experience after the first. Avalanche 0.6's ``SupervisedTemplate`` touches
  nothing of a storage policy before the first experience trains, so there the first
  experience is checked in its ``post_adapt`` (after training, before condensing), which also
  checks the whole stream when its number of classes is known.
* **Checkpoints.** With ``cache_dir``, each condensation is checkpointed there while it runs
  and its result saved; an interrupted run resumes mid-condensation, and a rerun reuses it.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from avalanche.training.storage_policy import ExemplarsBuffer

from ..coreset import CoresetSelector, herding
from ..data import ClassIndex
from ..config import TRAJECTORY_METHODS, matching_fingerprint, trajectory_fingerprint
from ..matching import DistributionMatcher, GradientMatcher, SelMatchMatcher, TrajectoryMatcher
from ..models import ConvNetSpec, make_convnet
from ..synthetic import CorruptSetError, SyntheticSet
from .config import CondensedReplayConfig
from .items import TASK_ATTR, ItemLayout, materialise, memory_dataset
from .transforms import make_memory_transform

__all__ = ["CondensedBuffer", "MemoryTooSmallError", "MemoryGroup", "GroupKey", "balanced_lengths", "group_lengths"]

GroupKey = tuple[int, int, int]  # (experience, task label, class id)


class MemoryTooSmallError(ValueError):
    """``mem_size`` cannot hold one image for every class."""


def balanced_lengths(max_size: int, n_groups: int) -> list[int]:
    """Avalanche's split of ``max_size`` into ``n_groups`` (``BalancedExemplarsBuffer``):
    ``max_size // n_groups`` each, the remainder one by one to the first groups."""
    lengths = [max_size // n_groups] * n_groups
    for i in range(max_size - sum(lengths)):
        lengths[i] += 1
    return lengths


def group_lengths(max_size: int, n_groups: int, ipc: int | None, what: str = "groups") -> tuple[list[int], str | None]:
    """The budget rule every memory of this project shares (the condensed buffer and
    learner-herding): ``ipc`` per group while ``ipc * n_groups`` fits in ``max_size``, else (and
    for ``ipc=None``) the balanced split. Returns the lengths and, when ``ipc`` had to give way,
    the warning to show (once)."""
    if ipc is not None:
        if ipc * n_groups <= max_size:
            return [ipc] * n_groups, None
        fallback = (f"ipc={ipc} for {n_groups} {what} needs {ipc * n_groups} images, more than "
                    f"mem_size={max_size}; falling back to the equal share of mem_size")
        return balanced_lengths(max_size, n_groups), fallback
    return balanced_lengths(max_size, n_groups), None


@dataclass
class MemoryGroup:
    """The memory of one (experience, task, class).

    ``images`` are the stored images in eval (untransformed) form: condensed images, or the
    selected real images. Real exemplars also keep ``indices`` into ``source`` (the experience
    dataset), through which they are replayed with the stream's transforms. ``ranked``: the
    images are in selection order, so a prefix is the selection at a smaller share.
    """

    images: torch.Tensor
    indices: list[int] | None = None
    source: Any = None
    ranked: bool = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def condensed(self) -> bool:
        return self.indices is None

    def shrink(self, k: int) -> "MemoryGroup":
        """The group re-selected to ``k`` images (see the module doc)."""
        if k >= len(self):
            return self
        order = torch.arange(k) if self.ranked else herding(self.images.flatten(1).double(), k).cpu()
        indices = None if self.indices is None else [self.indices[int(i)] for i in order]
        return MemoryGroup(self.images[order].clone(), indices, self.source, True)


def _experience_id(exp: Any, fallback: int) -> int:
    try:
        value = exp.current_experience
    except Exception:  # Avalanche raises when the attribute is unset
        value = None
    return int(value) if value is not None else fallback


def _group_keys(dataset, exp_id: int) -> set[GroupKey]:
    """The (experience, task, class) groups of an experience, from its data attributes only."""
    if not hasattr(dataset, "targets"):
        raise ValueError("the experience dataset has no `targets`; the condensed memory needs class labels")
    targets, tasks = dataset.targets, getattr(dataset, TASK_ATTR, None)
    task_set = set(getattr(tasks, "uniques", ())) if tasks is not None else {0}
    if len(task_set) == 1 and hasattr(targets, "uniques"):
        (t,) = task_set
        return {(exp_id, int(t), int(c)) for c in targets.uniques}
    targets = [int(v) for v in targets]
    tasks = [int(v) for v in tasks] if tasks is not None else [0] * len(targets)
    return {(exp_id, t, c) for t, c in zip(tasks, targets)}


def _eval_view(dataset):
    return dataset.eval() if hasattr(dataset, "eval") and callable(dataset.eval) else dataset


class CondensedBuffer(ExemplarsBuffer):
    """Rehearsal memory of condensed images, class-balanced, never above ``max_size`` items.

    Args:
        max_size: the memory budget in images (``mem_size`` of ``ReplayPlugin``).
        config: a :class:`CondensedReplayConfig`; keyword ``overrides`` replace its fields
            (``method="dm"``, ``ipc=10``, ``iterations=200``, ``preset="paper"``, ...).
        memory_transform: a name (``auto``, ``dsa``, ``none``: the config field) or a callable
            on one ``(C, H, W)`` image that replaces it for condensed images (train mode only).

    >>> buffer = CondensedBuffer(200, method="dc", preset="paper")
    >>> replay = ReplayPlugin(mem_size=200, storage_policy=buffer)
    """

    def __init__(self, max_size: int, config: CondensedReplayConfig | None = None, *,
                 memory_transform: str | Callable[[torch.Tensor], torch.Tensor] | None = None, **overrides: Any):
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
            raise ValueError(f"mem_size must be a positive integer, got {max_size!r}")
        super().__init__(max_size)
        if isinstance(memory_transform, str):  # a name: the config field
            overrides["memory_transform"], memory_transform = memory_transform, None
        self.config = (config or CondensedReplayConfig()).replace(**overrides)
        if memory_transform is not None and not callable(memory_transform):
            raise TypeError(f"memory_transform must be callable, got {type(memory_transform).__name__}")
        self._custom_transform = memory_transform
        self.groups: dict[GroupKey, MemoryGroup] = {}
        self.layout: ItemLayout | None = None
        self.history: list[dict] = []
        self._dataset = None
        self._warned_ipc = False
        self._stream_total: tuple[int, int | None] | None = None  # (id of the stream, its groups)
        self._agent = None      # the strategy seen in post_adapt (not pickled)
        self._checked = None    # the experience object last checked (not pickled)
        self._nets_ok: set[tuple] = set()

    # -- the memory as an Avalanche dataset ----------------------------------------------------
    @property
    def memory_transform(self) -> Callable | None:
        """What condensed images go through when replayed in train mode."""
        if self._custom_transform is not None:
            return self._custom_transform
        return make_memory_transform(self.config.memory_transform, dsa_strategy=self.config.matching.dsa_strategy,
                                     flip=self.config.flip)

    @property
    def buffer(self):
        self._check_current_experience()
        if not self.groups:
            return self._buffer  # the empty dataset ExemplarsBuffer starts with
        if self._dataset is None:
            self._dataset = self._build_dataset()
        return self._dataset

    @buffer.setter
    def buffer(self, value) -> None:
        raise AttributeError("CondensedBuffer.buffer is built from its groups; change `groups` "
                             "(a dict (experience, task, class) -> MemoryGroup) instead")

    def _build_dataset(self):
        keys = sorted(self.groups)
        parts = []
        condensed = [k for k in keys if self.groups[k].condensed]
        if condensed:
            images = torch.cat([self.groups[k].images for k in condensed])
            targets = [k[2] for k in condensed for _ in range(len(self.groups[k]))]
            tasks = [k[1] for k in condensed for _ in range(len(self.groups[k]))]
            parts.append(memory_dataset(images, targets, tasks, self.layout, transform=self.memory_transform))
        for k in keys:
            group = self.groups[k]
            if not group.condensed:
                part = group.source.subset(group.indices)
                # Plain lists: Avalanche 0.6's FlatData.concat fails on a ConstantSequence (the
                # task labels of many streams, SplitMNIST's included) after a list-backed attribute.
                for name in ("targets", TASK_ATTR):
                    if hasattr(part, name):
                        part = part.update_data_attribute(name, [int(v) for v in getattr(part, name)])
                parts.append(part)
        data = parts[0]
        for part in parts[1:]:
            data = data.concat(part)
        return data.train()

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def class_counts(self) -> dict[tuple[int, int], int]:
        """Images per (task, class), summed over experiences."""
        counts: dict[tuple[int, int], int] = {}
        for (_, t, c), g in self.groups.items():
            counts[(t, c)] = counts.get((t, c), 0) + len(g)
        return counts

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_dataset"] = None  # rebuilt on demand; keeps checkpoints small
        state["_agent"] = None
        state["_checked"] = None
        return state

    # -- the budget -----------------------------------------------------------------------------
    def stream_groups(self, exp: Any) -> int | None:
        """The number of groups of the whole stream ``exp`` comes from, or ``None`` when unknown
        (``total_classes="adaptive"``, or a stream that does not expose its experiences)."""
        total = self.config.total_classes
        if isinstance(total, int):
            return total
        if total == "adaptive":
            return None
        try:
            stream = exp.origin_stream
            n = len(stream)
        except Exception:  # unset origin_stream, or a stream generator without a length
            return None
        if self._stream_total is not None and self._stream_total[0] == id(stream):
            return self._stream_total[1]
        try:
            count = sum(len(_group_keys(e.dataset, i)) for i, e in enumerate(stream))
        except Exception:
            count = None
        self._stream_total = (id(stream), count if n else None)
        return self._stream_total[1]

    def shares(self, keys: list[GroupKey], total: int | None = None) -> dict[GroupKey, int]:
        """Images per group for the groups ``keys`` (all groups after an experience) when the
        stream has ``total`` groups (``None``: unknown). See the module doc."""
        keys = sorted(keys)
        if total is not None and total > self.max_size:
            raise MemoryTooSmallError(
                f"mem_size={self.max_size} is smaller than the number of classes of the stream "
                f"({total}, counting each class of each experience): the memory cannot keep one image "
                f"per class. Allowed: mem_size >= {total}")
        if len(keys) > self.max_size:
            raise MemoryTooSmallError(
                f"mem_size={self.max_size} is smaller than the number of classes seen so far "
                f"({len(keys)}, counting each class of each experience): the memory cannot keep one "
                f"image per class. Allowed: mem_size >= {len(keys)}")
        lengths, fallback = group_lengths(self.max_size, max(len(keys), total or 0, 1), self.config.ipc, "classes")
        if fallback and not self._warned_ipc:
            warnings.warn(fallback, stacklevel=3)
            self._warned_ipc = True
        return {k: lengths[i] for i, k in enumerate(keys)}

    def _check_items(self, exp: Any) -> ItemLayout:
        data = _eval_view(exp.dataset)
        layout = ItemLayout.of(data)
        if self.layout is not None and layout.signature != self.layout.signature:
            raise ValueError(f"experience items {layout.signature} differ from the earlier ones "
                             f"{self.layout.signature}; one memory needs one item structure")
        c, h, w = layout.image_shape
        if h != w:
            raise ValueError(f"condensation needs square images; the stream yields {c}x{h}x{w} (C x H x W). "
                             f"Resize the stream's images to one side (e.g. transforms.Resize(({h}, {h})))")
        if self.layout is not None and layout.image_shape != self.layout.image_shape:
            shape = "x".join(map(str, self.layout.image_shape))
            raise ValueError(f"experience images are {c}x{h}x{w}, the memory's are {shape}; "
                             f"harmonise the stream to one image size and channel count")
        key = (self.config.resolved_net, layout.image_shape)
        if key not in self._nets_ok:
            try:
                net = make_convnet(key[0], channels=c, num_classes=2, image_size=h, generator=torch.Generator())
                with torch.no_grad():
                    net(torch.zeros(1, c, h, w))
            except (RuntimeError, ValueError) as err:
                raise ValueError(f"{c}x{h}x{w} images do not fit the condensation network "
                                 f"{key[0]!r} ({str(err).splitlines()[0]}); use a shallower "
                                 f"net (e.g. net='convnet-d2') or larger images") from None
            self._nets_ok.add(key)
        return layout

    def check_experience(self, exp: Any) -> dict[GroupKey, int]:
        """Validate the experience's items and the budget for the groups it will add, before
        training on it. Returns the shares of all groups after the experience; raises
        :class:`MemoryTooSmallError` or ``ValueError``."""
        self._check_items(exp)
        exp_id = _experience_id(exp, len({k[0] for k in self.groups}))
        new = _group_keys(exp.dataset, exp_id)
        old = [k for k in self.groups if k[0] != exp_id]
        total = self.stream_groups(exp)
        if total is not None and total < len(old) + len(new):
            total = None  # the stream was not what it said: fall back to the adaptive rule
        shares = self.shares(old + sorted(new), total)
        self._checked = exp
        return shares

    def pre_adapt(self, agent: Any, exp: Any) -> None:
        """Avalanche's ``Agent`` hook before training: :meth:`check_experience`."""
        self.check_experience(exp)

    def _check_current_experience(self) -> None:
        # Plain ReplayPlugin reads `buffer` at the start of before_training_exp: check there.
        agent = self._agent
        if agent is None or not getattr(agent, "is_training", False):
            return
        exp = getattr(agent, "experience", None)
        if exp is None or exp is self._checked:
            return
        self.check_experience(exp)

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the budget; groups are re-selected to the new shares."""
        if isinstance(new_size, bool) or not isinstance(new_size, int) or new_size <= 0:
            raise ValueError(f"mem_size must be a positive integer, got {new_size!r}")
        old_size = self.max_size
        self.max_size = new_size
        total = self._stream_total[1] if self._stream_total else None
        if isinstance(self.config.total_classes, int):
            total = self.config.total_classes
        if total is not None and total < len(self.groups):
            total = None
        try:
            shares = self.shares(list(self.groups), total)
        except MemoryTooSmallError:
            self.max_size = old_size
            raise
        self._shrink(shares)

    def _shrink(self, shares: dict[GroupKey, int]) -> None:
        for key, group in self.groups.items():
            self.groups[key] = group.shrink(shares[key])
        self._dataset = None

    # -- updating after an experience ----------------------------------------------------------
    def post_adapt(self, agent: Any, exp: Any) -> None:
        """Condense ``exp`` into the memory (replacing its groups if it was seen before)."""
        self._agent = agent
        self._checked = None
        shares = self.check_experience(exp)
        layout = ItemLayout.of(_eval_view(exp.dataset))
        exp_id = _experience_id(exp, len({k[0] for k in self.groups}))
        data = materialise(exp.dataset)
        device = torch.device(self.config.device or getattr(agent, "device", None) or "cpu")
        new_groups: dict[GroupKey, MemoryGroup] = {}
        for task in sorted(set(data.tasks.tolist())):
            where = torch.nonzero(data.tasks == task).flatten()
            per_class = self._condense_task(data.images[where], data.targets[where], where, exp.dataset,
                                            {c: shares[(exp_id, task, c)] for c in set(data.targets[where].tolist())},
                                            device, seed=self.config.seed + 7919 * exp_id + task,
                                            where=f"experience {exp_id}, task {task}")
            for c, group in per_class.items():
                new_groups[(exp_id, task, c)] = group
        self.groups = {k: v for k, v in self.groups.items() if k[0] != exp_id}
        self._shrink(shares)
        self.groups.update(new_groups)
        self.layout = layout
        self._dataset = None
        self._checked = exp
        assert len(self) <= self.max_size, (len(self), self.max_size)

    def _condense_task(self, images: torch.Tensor, targets: torch.Tensor, positions: torch.Tensor, source,
                       shares: dict[int, int], device: torch.device, *, seed: int,
                       where: str) -> dict[int, MemoryGroup]:
        classes = sorted(shares)
        counts = {c: int((targets == c).sum()) for c in classes}
        out: dict[int, MemoryGroup] = {}
        small = [c for c in classes if counts[c] <= shares[c]]
        if small:
            warnings.warn(f"{where}: classes {small} have no more real images ({[counts[c] for c in small]}) "
                          f"than their share{'s' if len(small) > 1 else ''} of "
                          f"{', '.join(str(shares[c]) for c in small)}; they are stored as their real "
                          f"images, not condensed", stacklevel=4)
            for c in small:
                mask = targets == c
                out[c] = MemoryGroup(images[mask].clone(), positions[mask].tolist(), source, False)
        # classes with the same share are condensed together (shares differ by the remainder)
        by_share: dict[int, list[int]] = {}
        for c in classes:
            if c not in out:
                by_share.setdefault(shares[c], []).append(c)
        for share, big in sorted(by_share.items(), reverse=True):
            local = torch.full_like(targets, -1)
            for i, c in enumerate(big):
                local[targets == c] = i
            keep = local >= 0
            start = time.perf_counter()
            syn, picked, info = self._synthesise(images[keep], local[keep], len(big), share, device, seed)
            self.history.append({"where": where, "method": self.config.method, "ipc": share, "classes": big,
                                 "seconds": round(time.perf_counter() - start, 3), **info})
            labels = syn.labels.cpu()
            kept_positions = positions[keep]
            for i, c in enumerate(big):
                imgs = syn.images[labels == i].detach().cpu().clone()
                if picked is None:
                    out[c] = MemoryGroup(imgs)
                else:
                    idx = picked[labels == i]
                    out[c] = MemoryGroup(imgs, kept_positions[idx].tolist(), source, True)
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
        if cfg.method in TRAJECTORY_METHODS:
            cls = SelMatchMatcher if cfg.method == "selmatch" else TrajectoryMatcher
            return cls(index, ipc, config=cfg.matching, trajectory=cfg.trajectory, flip=self.config.flip,
                                     progress=self.config.progress, **common), cfg
        return CoresetSelector(cfg.method, index, ipc, config=cfg.selection, **common), cfg

    def _synthesise(self, images: torch.Tensor, labels: torch.Tensor, k: int, ipc: int, device: torch.device,
                    seed: int) -> tuple[SyntheticSet, torch.Tensor | None, dict]:
        """The condensed (or selected) set, the selected indices (coreset methods) and what
        happened (cached, resumed, iterations)."""
        index = ClassIndex(images.to(device), labels.to(device), k)
        condenser, cfg = self._condenser(index, ipc, seed)
        info = {"iterations": cfg.iterations, "cached": False, "resumed_from": 0}
        path = self._cache_path(images, labels, ipc, seed, cfg)
        if path is not None and path.is_file():
            try:
                syn = SyntheticSet.load(path)
                info["cached"] = True
                picked = syn.config.get("indices")
                return syn, None if picked is None else torch.as_tensor(picked, dtype=torch.long), info
            except CorruptSetError as err:
                warnings.warn(f"ignoring unreadable cached set {str(path)!r}: {err}", stacklevel=2)
        if isinstance(condenser, TrajectoryMatcher) and path is not None:
            condenser.experts_dir = path.with_name(path.stem + ".experts")  # kept and reused with the set
        if isinstance(condenser, CoresetSelector):
            picked = condenser.select(self.config.progress).cpu()
            syn = SyntheticSet(images[picked].clone(), labels[picked].clone(), cfg.method, "avalanche-experience",
                               ipc, seed, {"indices": picked.tolist(), "net": cfg.net})
        else:
            picked = None
            partial = None if path is None else path.with_name(path.stem + ".partial.pt")
            if partial is not None and partial.is_file():
                try:
                    condenser.load_checkpoint(partial)
                    info["resumed_from"] = condenser.iteration
                except Exception as err:  # a torn or foreign file: start afresh
                    warnings.warn(f"ignoring unreadable condensation checkpoint {str(partial)!r}: "
                                  f"{str(err).splitlines()[0]}", stacklevel=2)
            syn = condenser.run(cfg.iterations, checkpoint=partial, checkpoint_every_s=self.config.checkpoint_every_s,
                                progress=self.config.progress)
        if path is not None:
            syn.save(path)
            if picked is None and partial is not None and partial.exists():
                partial.unlink()
        return syn, picked, info

    def _cache_path(self, images: torch.Tensor, labels: torch.Tensor, ipc: int, seed: int, cfg) -> Path | None:
        if not self.config.cache_dir:
            return None
        h = hashlib.sha256()
        h.update(images.detach().cpu().contiguous().numpy().tobytes())
        h.update(labels.detach().cpu().contiguous().numpy().tobytes())
        # only what shapes the set: unrelated engine defaults may change without invalidating it
        settings = {"method": cfg.method, "ipc": ipc, "iterations": cfg.iterations, "net": cfg.net,
                    "matching": matching_fingerprint(cfg.matching), "selection": dataclasses.asdict(cfg.selection),
                    "seed": seed, "flip": self.config.flip}
        if cfg.method in TRAJECTORY_METHODS:  # only there: the other methods' cache keys stay as they were
            settings["trajectory"] = trajectory_fingerprint(cfg.trajectory, cfg.method)
        h.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return Path(self.config.cache_dir) / f"{cfg.method}-ipc{ipc}-{h.hexdigest()[:20]}.pt"
