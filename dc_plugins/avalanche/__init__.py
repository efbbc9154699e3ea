"""Condensed replay for Avalanche: a rehearsal memory of condensed images.

* :class:`CondensedReplayPlugin` -- used like Avalanche's ``ReplayPlugin``.
* :class:`CondensedBuffer` -- the memory, an ``ExemplarsBuffer`` (also a ``storage_policy``).
* :class:`CondensedReplayConfig` -- how experiences are condensed (YAML-loadable dataclass).
* :mod:`dc_plugins.avalanche.streams` -- SVHN -> MNIST -> USPS and offline digit streams.

Importing this package imports Avalanche; ``import dc_plugins`` alone does not.
"""

from .buffer import CondensedBuffer, MemoryTooSmallError
from .config import CondensedReplayConfig
from .plugin import CondensedReplayPlugin

__all__ = ["CondensedReplayPlugin", "CondensedBuffer", "CondensedReplayConfig", "MemoryTooSmallError"]
