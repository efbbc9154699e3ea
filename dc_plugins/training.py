"""Plain supervised training on in-memory tensors: the one loop every component trains with."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["train_epoch", "accuracy", "Augment"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def train_epoch(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                *, batch: int, generator: torch.Generator, augment: Augment | None = None,
                sync: bool = True) -> float | torch.Tensor:
    """One shuffled pass over ``images``; returns the mean loss. Raises on a non-finite loss.

    The losses are summed on the device and read once, at the end of the pass: one host sync an
    epoch instead of two a minibatch (a finiteness check and ``loss.item()``). A minibatch whose
    loss is not finite makes the sum non-finite (cross-entropy is never negative, so no
    ``inf - inf``), and the epoch raises after its last step instead of before the bad one.
    ``sync=False`` reads nothing: it returns the mean loss as a float64 tensor on the device and
    leaves the finiteness check to the caller (a matcher checks once an iteration).
    """
    net.train()
    order = torch.randperm(images.shape[0], generator=generator).to(images.device)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    for start in range(0, images.shape[0], batch):
        idx = order[start:start + batch]
        x, y = images[idx], labels[idx]
        if augment is not None:  # an augmentation that differs per image of the set takes the indices
            x = augment(x, generator, idx) if getattr(augment, "needs_indices", False) else augment(x, generator)
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * x.shape[0]
    if not sync:
        return total / max(images.shape[0], 1)
    mean = float(total) / max(images.shape[0], 1)
    if not math.isfinite(mean):
        from .matching.base import NonFiniteLossError
        raise NonFiniteLossError(f"training loss became {mean}")
    return mean


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch: int = 1024) -> float:
    """Top-1 accuracy in [0, 1] (eval mode)."""
    was_training = net.training
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], batch):
        out = net(images[start:start + batch])
        correct += int((out.argmax(1) == labels[start:start + batch]).sum())
    net.train(was_training)
    return correct / max(images.shape[0], 1)
