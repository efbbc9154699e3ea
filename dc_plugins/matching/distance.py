"""The layer-wise gradient distance of DC (Zhao et al., ICLR 2021)."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["gradient_distance", "layer_distance"]

_EPS = 1e-6


def layer_distance(g_real: torch.Tensor, g_syn: torch.Tensor) -> torch.Tensor:
    """Sum over output units of ``1 - cos(row_real, row_syn)``; 1-D tensors contribute 0.

    A tensor of shape ``(o, ...)`` is viewed as ``o`` rows (conv ``(o, i, h, w)`` -> ``(o, i*h*w)``,
    linear ``(o, i)`` as is, layer-norm ``(c, h, w)`` -> ``(c, h*w)``): matching per output unit
    keeps each unit's direction, which a whole-tensor cosine would wash out.
    """
    if g_real.shape != g_syn.shape:
        raise ValueError(f"gradient shapes differ: {tuple(g_real.shape)} vs {tuple(g_syn.shape)}")
    if g_real.ndim <= 1:
        return g_real.new_zeros(())
    a = g_real.reshape(g_real.shape[0], -1)
    b = g_syn.reshape(g_syn.shape[0], -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + _EPS)
    return (1 - cos).sum()


def gradient_distance(g_real: Sequence[torch.Tensor], g_syn: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum of :func:`layer_distance` over a network's parameter gradients."""
    g_real, g_syn = list(g_real), list(g_syn)
    if len(g_real) != len(g_syn):
        raise ValueError(f"{len(g_real)} real gradients vs {len(g_syn)} synthetic ones")
    return sum((layer_distance(a, b) for a, b in zip(g_real, g_syn)), g_syn[0].new_zeros(()))
