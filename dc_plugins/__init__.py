"""dc-plugins: dataset condensation as Avalanche replay memory and NNI NAS proxies.

The engine: ``load_dataset`` -> ``condense`` (DC, DSA, DM, MTT, SelMatch or a coreset baseline) ->
``SyntheticSet`` -> ``evaluate_set``. The Avalanche side (``CondensedReplayPlugin``) is imported
lazily so that the engine does not pay for importing Avalanche.
"""

__version__ = "0.1.0"

from .augment import DCAugment, DSAugment, DSAParams
from .condense import condense, make_condenser
from .config import EvalConfig, MatchingConfig, RunConfig, SelectionConfig, SelMatchConfig, TrajectoryConfig
from .coreset import CoresetSelector
from .data import ClassIndex, DatasetNotFoundError, ImageDataset, load_dataset
from .evaluation import EvalResult, evaluate_set
from .matching import DistributionMatcher, GradientMatcher, NonFiniteLossError, SelMatchMatcher, TrajectoryMatcher
from .models import ConvNet, ConvNetSpec, make_convnet
from .synthetic import CorruptSetError, SyntheticSet
from .trajectories import ExpertTrajectories

__all__ = [
    "__version__", "DCAugment", "DSAugment", "DSAParams", "condense", "make_condenser", "EvalConfig",
    "MatchingConfig", "RunConfig", "SelectionConfig", "CoresetSelector", "ClassIndex",
    "DatasetNotFoundError", "ImageDataset", "load_dataset", "EvalResult", "evaluate_set",
    "DistributionMatcher", "GradientMatcher", "NonFiniteLossError", "ConvNet", "ConvNetSpec",
    "make_convnet", "CorruptSetError", "SyntheticSet", "TrajectoryConfig", "SelMatchConfig", "TrajectoryMatcher",
    "SelMatchMatcher", "ExpertTrajectories",
]

_AVALANCHE_NAMES = ("CondensedReplayPlugin", "CondensedBuffer", "CondensedReplayConfig")


def __getattr__(name: str):
    """Import the Avalanche side on first use: ``dc_plugins.CondensedReplayPlugin``."""
    if name in _AVALANCHE_NAMES:
        from . import avalanche

        return getattr(avalanche, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
