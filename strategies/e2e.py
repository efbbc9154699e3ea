"""End-to-End incremental learning (Castro et al., 2018) as an Avalanche strategy factory.

E2E = replay of a memory + knowledge distillation on the old outputs, then an optional
class-balanced fine-tuning step. Built from Avalanche parts:

* memory: :class:`~dc_plugins.avalanche.CondensedReplayPlugin` (``condensed``: condensed images,
  or a coreset of the condensed buffer such as ``reference-herding`` = its ``method="herding"``), or
  ``ReplayPlugin`` with Avalanche's herding ``ParametricBuffer`` on the learner's features
  (``learner-herding``, :class:`~strategies.herding.LearnerHerdingBuffer`), or ``ReplayPlugin``
  with Avalanche's ``ClassBalancedBuffer`` (``class-balanced-random``: random real exemplars,
  ``ipc`` per class), or none;
* distillation: Avalanche's ``LwFPlugin`` (on the units of the classes seen before);
* balanced fine-tuning: :class:`BalancedFinetuningPlugin`, a few epochs at a small learning rate
  on the memory after it took in the new classes: the memory holds the same number of images
  for every class, so this is E2E's balanced subset (for learner-herding exactly; for a
  condensed memory, the condensed images stand in for the exemplars, as in the DC paper).

Plugin order matters after each experience: memory update, then fine-tuning, then LwF saves the
teacher (so the next experience distils the fine-tuned model). :func:`make_e2e_strategy` puts
them in that order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from avalanche.models import avalanche_forward
from avalanche.training.plugins import LwFPlugin, ReplayPlugin, SupervisedPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer
from avalanche.training.supervised import Naive
from torch.utils.data import DataLoader

from dc_plugins.avalanche import CondensedReplayConfig, CondensedReplayPlugin

from .herding import learner_herding_buffer

__all__ = ["MEMORIES", "AMBIGUOUS_HERDING", "E2EConfig", "BalancedFinetuningPlugin", "make_e2e_strategy"]

MEMORIES = ("none", "learner-herding", "class-balanced-random", "condensed")

AMBIGUOUS_HERDING = ("'herding' names two baselines: use 'learner-herding' (Avalanche's ParametricBuffer + "
                     "HerdingSelectionStrategy on the learner's features) or 'reference-herding' (the condensed "
                     "buffer's method 'herding', features of a separately trained reference ConvNet)")


@dataclass
class E2EConfig:
    """The training recipe; every field can come from YAML.

    ``memory``: ``none`` (fine-tuning only), ``learner-herding`` (Avalanche's herding buffer on
    the learner's features), ``class-balanced-random`` (Avalanche's ``ClassBalancedBuffer``:
    random real exemplars, ``mem_size // (mem_size // ipc)`` per class, i.e. exactly ``ipc`` when
    ``ipc`` divides ``mem_size``; ``ipc=None``: the adaptive equal share of the classes seen) or
    ``condensed`` (the method of the :class:`CondensedReplayConfig`; ``reference-herding`` is
    ``condensed`` with method ``herding``). ``mem_size`` images in total; ``ipc`` per class
    (``None``: equal share of ``mem_size``).
    """

    memory: str = "condensed"
    mem_size: int = 300
    ipc: Optional[int] = 10
    distillation: bool = True
    alpha: float = 1.0
    temperature: float = 2.0
    balanced_finetuning: bool = False
    finetune_epochs: int = 10
    finetune_lr: float = 0.001
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch: int = 128
    batch_mem: Optional[int] = None
    herding_layer: str = "features"

    def __post_init__(self) -> None:
        if self.memory == "herding":
            raise ValueError(f"memory {AMBIGUOUS_HERDING}; here reference-herding is memory 'condensed' "
                             f"with CondensedReplayConfig(method='herding')")
        if self.memory not in MEMORIES:
            raise ValueError(f"unknown memory {self.memory!r}; allowed: {', '.join(MEMORIES)}")
        for name in ("mem_size", "epochs", "batch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.ipc is not None and not 0 < self.ipc <= self.mem_size:
            raise ValueError(f"ipc must be in 1..mem_size={self.mem_size} or None, got {self.ipc}")
        if self.balanced_finetuning and self.memory == "none":
            raise ValueError("balanced_finetuning fine-tunes on the memory; it needs a memory (learner-herding, class-balanced-random or condensed)")

    def replace(self, **changes: Any) -> "E2EConfig":
        return dataclasses.replace(self, **changes)


class BalancedFinetuningPlugin(SupervisedPlugin):
    """E2E's class-balanced fine-tuning: after each experience but the first, train the model
    ``epochs`` epochs on the (class-balanced) replay memory at learning rate ``lr``.

    Args:
        replay: the ``ReplayPlugin`` (or ``CondensedReplayPlugin``) whose memory is used; it must
            come before this plugin in the strategy's plugin list.
        seed: shuffling of the fine-tuning batches uses its own generator (experience index added).
    """

    def __init__(self, replay: ReplayPlugin, *, epochs: int = 10, lr: float = 0.001, batch_size: int = 128,
                 momentum: float = 0.9, weight_decay: float = 5e-4, seed: int = 0):
        super().__init__()
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        self.replay = replay
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.momentum, self.weight_decay, self.seed = momentum, weight_decay, seed
        self.finetuned_experiences: list[int] = []
        self._experiences_seen = 0

    def after_training_exp(self, strategy, **kwargs):
        self._experiences_seen += 1
        if self._experiences_seen == 1 or self.epochs == 0:
            return  # nothing old to balance against yet
        memory = self.replay.storage_policy.buffer
        if len(memory) == 0:
            return
        model = strategy.model
        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        g = torch.Generator().manual_seed(self.seed + self._experiences_seen)
        loader = DataLoader(memory, batch_size=self.batch_size, shuffle=True, generator=g,
                            collate_fn=getattr(memory, "collate_fn", None))
        model.train()
        for _ in range(self.epochs):
            for batch in loader:
                x, y = batch[0].to(strategy.device), batch[1].to(strategy.device)
                t = batch[-1].to(strategy.device) if len(batch) > 2 else None
                loss = strategy._criterion(avalanche_forward(model, x, t), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.finetuned_experiences.append(self._experiences_seen - 1)


def make_e2e_strategy(model: torch.nn.Module, config: E2EConfig | None = None, *,
                      condensed: CondensedReplayConfig | None = None, device: str | torch.device = "cpu",
                      evaluator: Any = None, plugins: Sequence[SupervisedPlugin] = (),
                      eval_mb_size: int = 512, seed: int = 0) -> Naive:
    """A ``Naive`` strategy with the E2E plugins for ``config`` (see the module doc).

    ``condensed`` configures the condensed memory (method, iterations, ...); its ``ipc`` is
    taken from ``config.ipc``. ``plugins`` are appended after the E2E ones.
    """
    config = config or E2EConfig()
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    chain: list[SupervisedPlugin] = []
    replay: ReplayPlugin | None = None
    if config.memory == "condensed":
        cfg = (condensed or CondensedReplayConfig()).replace(ipc=config.ipc)
        replay = CondensedReplayPlugin(mem_size=config.mem_size, batch_size=config.batch,
                                       batch_size_mem=config.batch_mem or config.batch, config=cfg)
    elif config.memory == "learner-herding":
        buffer = learner_herding_buffer(model, config.mem_size, ipc=config.ipc, layer_name=config.herding_layer)
        replay = ReplayPlugin(mem_size=config.mem_size, storage_policy=buffer, batch_size=config.batch,
                              batch_size_mem=config.batch_mem or config.batch)
    elif config.memory == "class-balanced-random":
        # fixed share mem_size // (mem_size // ipc) per class (= ipc when ipc divides mem_size): the
        # memory grows as classes arrive, as the other memories at ipc
        buffer = ClassBalancedBuffer(config.mem_size, adaptive_size=config.ipc is None,
                                     total_num_classes=config.mem_size // config.ipc if config.ipc else None)
        replay = ReplayPlugin(mem_size=config.mem_size, storage_policy=buffer, batch_size=config.batch,
                              batch_size_mem=config.batch_mem or config.batch)
    if replay is not None:
        chain.append(replay)
        if config.balanced_finetuning:
            chain.append(BalancedFinetuningPlugin(replay, epochs=config.finetune_epochs, lr=config.finetune_lr,
                                                  batch_size=config.batch, momentum=config.momentum,
                                                  weight_decay=config.weight_decay, seed=seed))
    if config.distillation:
        chain.append(LwFPlugin(alpha=config.alpha, temperature=config.temperature))
    chain.extend(plugins)
    kwargs = {} if evaluator is None else {"evaluator": evaluator}
    return Naive(model=model, optimizer=opt, train_mb_size=config.batch, train_epochs=config.epochs,
                 eval_mb_size=eval_mb_size, device=device, plugins=chain, **kwargs)
