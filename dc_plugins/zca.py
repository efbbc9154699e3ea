"""ZCA whitening of image tensors, invertible (MTT whitens CIFAR at 1 and 10 images per class).

``ZCA.fit(x)`` estimates the mean and covariance of the flattened images and keeps
``W = U diag((s + eps)^-1/2) U^T`` and its inverse ``U diag((s + eps)^1/2) U^T`` (``eigh`` of the
covariance, ``eps`` the regularisation the MTT code passes to kornia's ZCA, 0.1). ``transform``
whitens, ``inverse`` maps whitened images (the learned set) back to the dataset's normalised
space, for the image grid and for every consumer that expects the dataset's space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ZCA"]


@dataclass
class ZCA:
    mean: torch.Tensor       # (D,), float64
    matrix: torch.Tensor     # (D, D), symmetric, float64
    inverse_matrix: torch.Tensor
    eps: float

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 0.1) -> "ZCA":
        if x.ndim < 2 or x.shape[0] < 2:
            raise ValueError(f"ZCA needs at least 2 images to estimate a covariance, got shape {tuple(x.shape)}")
        if eps < 0:
            raise ValueError(f"ZCA eps must be >= 0, got {eps}")
        flat = x.detach().reshape(x.shape[0], -1).double()
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / (flat.shape[0] - 1)
        s, u = torch.linalg.eigh(cov)
        s = s.clamp(min=0) + eps
        if not bool((s > 0).all()):
            raise ValueError("ZCA with eps=0 on a singular covariance is not invertible; use eps > 0")
        w = (u * s.rsqrt()) @ u.T
        w_inv = (u * s.sqrt()) @ u.T
        return cls(mean, w, w_inv, float(eps))  # kept in float64: whitening is applied once

    def to(self, device=None, dtype=None) -> "ZCA":
        return ZCA(self.mean.to(device, dtype), self.matrix.to(device, dtype),
                   self.inverse_matrix.to(device, dtype), self.eps)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).double()
        m, w = self.mean.to(flat.device), self.matrix.to(flat.device)
        return ((flat - m) @ w).reshape(x.shape).to(x.dtype)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).double()
        m, w = self.mean.to(flat.device), self.inverse_matrix.to(flat.device)
        return (flat @ w + m).reshape(x.shape).to(x.dtype)
