"""Learner-herding vs condensed rehearsal memory in continual learning on digit streams (DC paper, Sec. 4).

Each run trains one learner through a stream of digit datasets (SVHN -> MNIST -> USPS, or with
``--offline`` MNIST-10k -> USPS -> scikit-learn digits) with End-to-End-style replay: the memory
(``learner-herding``: Avalanche's herding buffer on the learner's features; ``reference-herding``:
the condensed buffer's herding on a reference ConvNet; or condensed images, ``dc``, ``dsa``,
``dm``, ...), with or without knowledge distillation, over several seeds. After each stage the
learner is tested on the test sets of all domains seen so far; the table reports the mean of those
accuracies, mean ± std over seeds, as the paper does, and Avalanche's forgetting.

    python examples/continual_digits.py --config continual_digits --offline
    python examples/continual_digits.py --config continual_digits --root data --download

Outputs under ``out``: ``table.md``, ``table.csv`` (mean/std per stage), ``results.csv`` (every
run and stage), ``accuracy.png``, ``config.json`` and one folder per run with ``result.json``
and Avalanche's CSV logs. A repeated command reuses the finished runs of the same configuration
and refuses a run folder of another one (naming the differing fields).

The runner is :mod:`strategies.continual` (config: :class:`strategies.continual.ContinualConfig`,
sections ``train`` = :class:`strategies.E2EConfig` and ``condense`` = ``CondensedReplayConfig``);
the table and plot are :mod:`strategies.report`. ``--set key=value`` changes any field
(``--set train.epochs=2 --set condense.iterations=5``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from strategies import continual  # noqa: E402


def main(argv=None) -> int:
    return continual.cli(argv, prog="continual_digits", description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
