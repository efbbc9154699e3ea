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

__all__ = ["DSAItemTransform", "make_memory_transform"]


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
