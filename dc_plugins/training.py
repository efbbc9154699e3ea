"""Plain supervised training on in-memory tensors: the one loop every component trains with."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["train_epoch", "accuracy", "Augment"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def train_epoch(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                *, batch: int, generator: torch.Generator, augment: Augment | None = None) -> float:
    """One shuffled pass over ``images``; returns the mean loss. Raises on a non-finite loss."""
    net.train()
    order = torch.randperm(images.shape[0], generator=generator).to(images.device)
    total, seen = 0.0, 0
    for start in range(0, images.shape[0], batch):
        idx = order[start:start + batch]
        x, y = images[idx], labels[idx]
        if augment is not None:  # an augmentation that differs per image of the set takes the indices
            x = augment(x, generator, idx) if getattr(augment, "needs_indices", False) else augment(x, generator)
        loss = F.cross_entropy(net(x), y)
        if not torch.isfinite(loss):
            from .matching.base import NonFiniteLossError
            raise NonFiniteLossError(f"training loss became {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * x.shape[0]
        seen += x.shape[0]
    return total / max(seen, 1)


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
