"""``learner-herding``: the herding baseline as Avalanche users have it (iCaRL, End-to-End).

Avalanche's ``ParametricBuffer`` + ``HerdingSelectionStrategy``: at the end of each experience
exemplars are chosen by herding (iCaRL's greedy mean matching) in the feature space of the
strategy's **own model** (the learner). Not to be confused with ``reference-herding``, the
condensed buffer's ``method="herding"`` (``CondensedBuffer``), whose features come from a
separately trained reference ConvNet: two baselines, two names.

:class:`LearnerHerdingBuffer` changes two things of the stock ``ParametricBuffer`` so that the
comparison with the condensed memory is like for like:

* **Groups as the condensed buffer's.** A group is one class of one experience, keyed
  ``(experience, task label, class)``: by class in class-incremental streams (each class comes in
  one experience), by (task, class) in task-incremental ones (labels restart at 0 in each task),
  and by (experience, class) in domain-incremental ones, where the same digit in a new domain is
  a new group that keeps its own exemplars. Avalanche's ``groupby="class"`` would merge a digit's
  domains into one group and herd over their union.
* **Features of the stored images, not of augmented ones.** Avalanche's herding reads the
  experience in whatever mode it is in (train mode after training: with the learner's crop +
  flip, a new random view per image); here the features come from the eval view
  (:class:`EvalViewHerding`), while the kept exemplars are replayed through the stream's train
  transforms as before. No change for streams without train transforms (the digit streams).
* **Exactly ``ipc`` per group.** Avalanche's fixed-group mode keeps ``mem_size // total_groups``
  per group (``mem_size // (mem_size // ipc)``: 6 instead of 5 at 24/5); here each group keeps
  ``ipc`` exemplars while ``ipc * groups <= mem_size`` (the memory grows as classes arrive), and
  the equal share otherwise, as the condensed buffer does. ``ipc=None`` is Avalanche's adaptive
  equal share (every slot used, the remainder to the first groups).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import torch.nn as nn
from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer

from dc_plugins.avalanche.buffer import group_lengths

__all__ = ["EvalViewHerding", "LearnerHerdingBuffer", "learner_herding_buffer"]

TASK_ATTR = "targets_task_labels"


class EvalViewHerding(HerdingSelectionStrategy):
    """Avalanche's ``HerdingSelectionStrategy`` on the data's eval view (no train-time
    augmentation); the indices refer to the same items."""

    def make_sorted_indices(self, strategy: Any, data: Any) -> list[int]:
        view = data.eval() if hasattr(data, "eval") and callable(data.eval) else data
        return super().make_sorted_indices(strategy, view)


class LearnerHerdingBuffer(ParametricBuffer):
    """``ParametricBuffer`` with herding on the learner's features, grouped by
    ``(experience, task, class)``, keeping exactly ``ipc`` exemplars per group (module doc).

    Args:
        model: the strategy's model; features are the output of its module ``layer_name``.
        max_size: the memory budget in images; never exceeded.
        ipc: exemplars per group, or ``None`` for the equal share of ``max_size``.
        layer_name: the feature module (``features`` for the engine's ConvNet: the embedding).
    """

    def __init__(self, model: nn.Module, max_size: int, *, ipc: int | None = None, layer_name: str = "features"):
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
            raise ValueError(f"mem_size must be a positive integer, got {max_size!r}")
        if ipc is not None and (isinstance(ipc, bool) or not isinstance(ipc, int) or not 0 < ipc <= max_size):
            raise ValueError(f"ipc must be an integer in 1..mem_size={max_size} or None, got {ipc!r}")
        names = dict(model.named_modules())
        if layer_name not in names:
            listed = ", ".join(repr(n) for n in list(names)[1:12])
            raise ValueError(f"model has no module {layer_name!r} to take herding features from; "
                             f"its modules include {listed}")
        super().__init__(max_size, groupby="class", selection_strategy=EvalViewHerding(model, layer_name))
        self.groupby = "experience-task-class"  # what _make_groups does (Avalanche only reads it there)
        self.ipc = ipc
        self._experience = 0
        self._warned_ipc = False

    def get_group_lengths(self, num_groups: int) -> list[int]:
        lengths, fallback = group_lengths(self.max_size, num_groups, self.ipc)  # the condensed buffer's rule
        if fallback and not self._warned_ipc:
            warnings.warn(fallback, stacklevel=2)
            self._warned_ipc = True
        return lengths

    def class_counts(self) -> dict[tuple[int, int], int]:
        """Exemplars per (task, class), summed over experiences (as ``CondensedBuffer.class_counts``)."""
        counts: dict[tuple[int, int], int] = {}
        for (_, t, c), group in self.buffer_groups.items():
            counts[(t, c)] = counts.get((t, c), 0) + len(group.buffer)
        return counts

    def post_adapt(self, agent: Any, exp: Any) -> None:
        value = getattr(exp, "current_experience", None)
        self._experience = int(value) if value is not None else len({k[0] for k in self.buffer_groups})
        super().post_adapt(agent, exp)

    def _make_groups(self, strategy: Any, data: Any) -> dict:
        if not hasattr(data, "targets"):
            raise ValueError("the experience dataset has no `targets`; the herding memory needs class labels")
        targets = [int(v) for v in data.targets]
        tasks = [int(v) for v in getattr(data, TASK_ATTR)] if hasattr(data, TASK_ATTR) else [0] * len(targets)
        indices: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for i, (t, c) in enumerate(zip(tasks, targets)):
            indices[(self._experience, t, c)].append(i)
        return {key: data.subset(idx) for key, idx in sorted(indices.items())}


def learner_herding_buffer(model: nn.Module, mem_size: int, *, ipc: int | None = None,
                           layer_name: str = "features") -> LearnerHerdingBuffer:
    """The ``learner-herding`` memory for ``ReplayPlugin(mem_size, storage_policy=...)``; see
    :class:`LearnerHerdingBuffer`."""
    return LearnerHerdingBuffer(model, mem_size, ipc=ipc, layer_name=layer_name)
