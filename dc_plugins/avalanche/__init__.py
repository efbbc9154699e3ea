"""Condensed replay for Avalanche: a rehearsal memory of condensed images.

* :class:`CondensedReplayPlugin` -- used like Avalanche's ``ReplayPlugin``.
* :class:`CondensedBuffer` -- the memory, an ``ExemplarsBuffer`` (also a ``storage_policy``).
* :class:`CondensedReplayConfig` -- how experiences are condensed (YAML-loadable dataclass).
* :mod:`dc_plugins.avalanche.streams` -- SVHN -> MNIST -> USPS and offline digit streams.

Importing this package imports Avalanche; ``import dc_plugins`` alone does not.
"""

import warnings

# ``import avalanche`` warns "no QP solver found" (qpsolvers 4 dropped its solver extra): only
# GEM/A-GEM's QP needs one, never replay; the warning would greet every user of this package.
warnings.filterwarnings("ignore", message=".*no QP solver found.*", category=UserWarning)

from .buffer import CondensedBuffer, MemoryTooSmallError  # noqa: E402
from .config import CondensedReplayConfig  # noqa: E402
from .plugin import CondensedReplayPlugin  # noqa: E402

__all__ = ["CondensedReplayPlugin", "CondensedBuffer", "CondensedReplayConfig", "MemoryTooSmallError"]
