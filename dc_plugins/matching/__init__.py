"""Matchers: learn a synthetic set by matching gradients (DC, DSA) or embeddings (DM)."""

from .base import CorruptCheckpointError, Matcher, NonFiniteLossError, initial_images
from .distance import gradient_distance, layer_distance
from .distribution import DistributionMatcher
from .gradient import GradientMatcher

__all__ = ["Matcher", "GradientMatcher", "DistributionMatcher", "NonFiniteLossError", "CorruptCheckpointError",
           "gradient_distance", "layer_distance", "initial_images"]
