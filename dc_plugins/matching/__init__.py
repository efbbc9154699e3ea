"""Matchers: learn a synthetic set by matching gradients (DC, DSA), embeddings (DM) or training
trajectories (MTT)."""

from .base import CorruptCheckpointError, Matcher, NonFiniteLossError, initial_images
from .distance import gradient_distance, layer_distance
from .distribution import DistributionMatcher
from .gradient import GradientMatcher
from .selmatch import SelMatchMatcher
from .trajectory import TrajectoryMatcher

__all__ = ["Matcher", "GradientMatcher", "DistributionMatcher", "TrajectoryMatcher", "SelMatchMatcher", "NonFiniteLossError", "CorruptCheckpointError",
           "gradient_distance", "layer_distance", "initial_images"]
