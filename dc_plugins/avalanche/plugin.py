"""``CondensedReplayPlugin``: Avalanche's ``ReplayPlugin`` with a condensed memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from avalanche.training.plugins import ReplayPlugin

from .buffer import CondensedBuffer
from .config import CondensedReplayConfig

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

__all__ = ["CondensedReplayPlugin"]


class CondensedReplayPlugin(ReplayPlugin):
    """Experience replay whose memory holds condensed images instead of real exemplars.

    A drop-in for ``ReplayPlugin``: the same positional arguments in the same order, the
    condensation options keyword-only::

        strategy = Naive(model, optimizer, plugins=[CondensedReplayPlugin(100)])
        CondensedReplayPlugin(300, 128, 128, method="dc", ipc=10, preset="paper")

    The default (``CondensedReplayPlugin(100)``) is a bounded CPU budget: DM, ``cpu-quick``,
    a 32-channel ConvNet (see :mod:`dc_plugins.avalanche.config`); ``preset="paper"`` is the
    published one.

    * ``before_training_exp``: checks the experience's items (square images of the memory's
      shape) and that ``mem_size`` can hold its classes (a clear ``MemoryTooSmallError`` or
      ``ValueError`` before any training), then mixes the memory with the current data in
      Avalanche's ``ReplayDataLoader`` (from the second experience on).
    * ``after_training_exp``: condenses the experience into the :class:`CondensedBuffer`.

    Args:
        mem_size, batch_size, batch_size_mem, task_balanced_dataloader: as in ``ReplayPlugin``;
            ``mem_size`` (default 200) is never exceeded.
        storage_policy: a ready :class:`CondensedBuffer` (its ``max_size`` must equal
            ``mem_size``); then the options below belong to the buffer and must not be given.
        method: ``dm``, ``dc``, ``dsa``, or a coreset baseline (``random``, ``herding``,
            ``kcenter``, ``forgetting``); default: ``config.method`` (``dm``).
        ipc: images per class (memory grows as classes arrive); ``None``: ``mem_size`` shared
            equally, at the final share when the stream's classes are known.
        config: a :class:`CondensedReplayConfig` (e.g. ``CondensedReplayConfig.from_yaml(path)``);
            any of its fields can also be given as keyword ``overrides`` (``preset="paper"``,
            ``iterations=...``, ``cache_dir=...``, ``total_classes=...``, ...).
        memory_transform: a callable replacing the config's named transform of condensed
            images in train mode (see :class:`CondensedBuffer`).
    """

    def __init__(self, mem_size: int = 200, batch_size: Optional[int] = None, batch_size_mem: Optional[int] = None,
                 task_balanced_dataloader: bool = False, storage_policy: Optional[CondensedBuffer] = None, *,
                 method: Optional[str] = None, ipc: Optional[int] = None,
                 config: Optional[CondensedReplayConfig] = None,
                 memory_transform: Optional[Callable] = None, **overrides: Any):
        if storage_policy is None:
            if method is not None:
                overrides["method"] = method
            if ipc is not None:
                overrides["ipc"] = ipc
            storage_policy = CondensedBuffer(mem_size, config, memory_transform=memory_transform, **overrides)
        elif not isinstance(storage_policy, CondensedBuffer):
            raise TypeError(f"storage_policy must be a CondensedBuffer, got {type(storage_policy).__name__}; "
                            f"use Avalanche's ReplayPlugin for other buffers")
        elif storage_policy.max_size != mem_size:
            raise ValueError(f"storage_policy.max_size={storage_policy.max_size} differs from mem_size={mem_size}")
        else:
            given = [name for name, value in (("method", method), ("ipc", ipc), ("config", config),
                                              ("memory_transform", memory_transform)) if value is not None]
            if given or overrides:
                raise TypeError(f"condensation options {given + sorted(overrides)} given with a ready "
                                f"storage_policy; set them on the CondensedBuffer instead")
        super().__init__(mem_size, batch_size, batch_size_mem, task_balanced_dataloader, storage_policy)

    @property
    def buffer(self) -> CondensedBuffer:
        return self.storage_policy

    def before_training_exp(self, strategy: "SupervisedTemplate", num_workers: int = 0, shuffle: bool = True,
                            drop_last: bool = False, **kwargs):
        self.storage_policy.check_experience(strategy.experience)
        super().before_training_exp(strategy, num_workers=num_workers, shuffle=shuffle, drop_last=drop_last,
                                    **kwargs)

    def after_training_exp(self, strategy: "SupervisedTemplate", **kwargs):
        # ReplayPlugin goes through the deprecated ``update``; call the new hook directly.
        self.storage_policy.post_adapt(strategy, strategy.experience)
