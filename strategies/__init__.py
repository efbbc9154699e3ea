"""Continual-learning recipes of the DC paper as Avalanche strategies, and their runner.

* :func:`make_e2e_strategy` / :class:`E2EConfig`: End-to-End incremental learning (replay +
  distillation, optional class-balanced fine-tuning) with a condensed, learner-herding or no memory.
* :class:`LearnerHerdingBuffer` / :func:`learner_herding_buffer`: ``learner-herding``, Avalanche's
  ``ParametricBuffer`` + ``HerdingSelectionStrategy`` on the learner's own features, grouped and
  sized like the condensed buffer.
* :mod:`strategies.continual`: the runner of a memory x distillation x seed comparison on a digit
  stream (:class:`~strategies.continual.ContinualConfig`, resume with a configuration check);
  :mod:`strategies.report`: its table, CSV files and plot.
"""

import dc_plugins.avalanche  # noqa: F401  (first: it quiets Avalanche's import-time QP-solver warning)

from .e2e import AMBIGUOUS_HERDING, MEMORIES, BalancedFinetuningPlugin, E2EConfig, make_e2e_strategy
from .herding import LearnerHerdingBuffer, learner_herding_buffer

__all__ = ["MEMORIES", "AMBIGUOUS_HERDING", "BalancedFinetuningPlugin", "E2EConfig", "make_e2e_strategy",
           "LearnerHerdingBuffer", "learner_herding_buffer"]
