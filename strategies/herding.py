"""The herding baseline as Avalanche users have it: ``ParametricBuffer`` + ``HerdingSelectionStrategy``.

Exemplars are chosen by herding (iCaRL's greedy mean matching) in the feature space of the
strategy's own model at the end of each experience, one group per class.
"""

from __future__ import annotations

import torch.nn as nn
from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer

__all__ = ["herding_buffer"]


def herding_buffer(model: nn.Module, mem_size: int, *, ipc: int | None = None,
                   layer_name: str = "features") -> ParametricBuffer:
    """Avalanche's class-grouped herding memory.

    Args:
        model: the strategy's model; features are the output of its module ``layer_name``
            (``features`` for the engine's ConvNet: the flattened embedding).
        mem_size: the memory budget in images.
        ipc: ``None``: Avalanche's default, ``mem_size`` shared equally by the classes seen so
            far. An integer: ``ipc`` exemplars per class (Avalanche's fixed-group mode with
            ``mem_size // ipc`` groups), so the memory grows as classes arrive, like the DC
            paper's 10 images per class; seeing more than ``mem_size // ipc`` classes then
            exceeds ``mem_size`` (an Avalanche limitation), so size ``mem_size`` for the stream.

    Note: grouping is by class label only, so in task-incremental streams whose labels restart
    at 0 in each task, classes of different tasks share groups.
    """
    if isinstance(mem_size, bool) or not isinstance(mem_size, int) or mem_size <= 0:
        raise ValueError(f"mem_size must be a positive integer, got {mem_size!r}")
    names = dict(model.named_modules())
    if layer_name not in names:
        listed = ", ".join(repr(n) for n in list(names)[1:12])
        raise ValueError(f"model has no module {layer_name!r} to take herding features from; "
                         f"its modules include {listed}")
    buffer = ParametricBuffer(mem_size, groupby="class",
                              selection_strategy=HerdingSelectionStrategy(model, layer_name))
    if ipc is not None:
        if isinstance(ipc, bool) or not isinstance(ipc, int) or not 0 < ipc <= mem_size:
            raise ValueError(f"ipc must be an integer in 1..mem_size={mem_size}, got {ipc!r}")
        buffer.adaptive_size = False
        buffer.total_num_groups = mem_size // ipc
    return buffer
