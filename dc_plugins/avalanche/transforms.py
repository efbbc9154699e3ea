"""How condensed images are augmented when they are replayed.

Condensed images are tensors in the stream's normalised space, so a stream's PIL or
``ToTensor`` train transforms do not apply to them. :class:`DSAItemTransform` is the default
``memory_transform``: per item, one DSA transformation (the family and its parameters drawn
from torch's global random generator, like torchvision's random transforms; DataLoader workers
seed it per worker). It is set as the ``train`` group of the memory's Avalanche transform
groups, so memory items are augmented in train mode only and returned as stored in eval mode.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..augment import DSAugment

__all__ = ["LEARNER_AUGMENTS", "DSAItemTransform", "make_learner_transform", "make_memory_transform"]

# Train-time augmentation of a stream's real items for the learner (not of condensed images).
LEARNER_AUGMENTS = ("none", "crop-flip")


class DSAItemTransform:
    """DSA on one ``(C, H, W)`` image: a random family and per-item parameters."""

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", *, flip: bool = False):
        self.augment = DSAugment(strategy, flip=flip)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(x.unsqueeze(0), None)[0]

    def __repr__(self) -> str:
        return f"DSAItemTransform({'_'.join(self.augment.families)!r})"


def make_memory_transform(name: str, *, dsa_strategy: str, flip: bool) -> Callable | None:
    """The transform a :class:`~dc_plugins.avalanche.CondensedReplayConfig` names (``auto``,
    ``dsa`` or ``none``)."""
    if name in ("auto", "dsa"):
        return DSAItemTransform(dsa_strategy, flip=flip)
    if name == "none":
        return None
    raise ValueError(f"unknown memory_transform {name!r}; allowed: auto, dsa, none")


def make_learner_transform(name: str, image_size: int) -> Callable | None:
    """The learner's augmentation of real training items (normalised ``(C, H, W)`` tensors):
    ``none``, or ``crop-flip``: torchvision's ``RandomCrop(image_size, padding=image_size // 8)``
    (4 px at 32 px, zero = the mean colour in normalised space) and ``RandomHorizontalFlip()``,
    the usual CIFAR recipe (Avalanche's SplitCIFAR10 default). Random draws come from torch's
    global generator, like every torchvision transform (the runner seeds it per run)."""
    if name == "none":
        return None
    if name == "crop-flip":
        from torchvision.transforms import v2

        return v2.Compose([v2.RandomCrop(image_size, padding=max(1, image_size // 8)), v2.RandomHorizontalFlip()])
    raise ValueError(f"unknown learner augmentation {name!r}; allowed: {', '.join(LEARNER_AUGMENTS)}")
