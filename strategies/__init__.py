"""Continual-learning recipes of the DC paper as Avalanche strategies.

* :func:`make_e2e_strategy` / :class:`E2EConfig`: End-to-End incremental learning (replay +
  distillation, optional class-balanced fine-tuning) with a condensed, herding or no memory.
* :func:`herding_buffer`: Avalanche's own ``ParametricBuffer`` + ``HerdingSelectionStrategy``.
"""

from .e2e import MEMORIES, BalancedFinetuningPlugin, E2EConfig, make_e2e_strategy
from .herding import herding_buffer

__all__ = ["MEMORIES", "BalancedFinetuningPlugin", "E2EConfig", "make_e2e_strategy", "herding_buffer"]
