"""Differentiable Siamese Augmentation (DSA) and the DC paper's evaluation augmentation.

DSA draws one transformation family per call and its parameters from an explicit
``torch.Generator``; the parameters are an object (:class:`DSAParams`) that can be applied to
several batches. Siamese use = draw once, apply to the real and to the synthetic batch, so both
see the same transformation and gradients flow through it to the synthetic images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["DSA_FAMILIES", "DSAParams", "DSAugment", "DCAugment", "CropFlip", "CombinedAugment"]

DSA_FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass
class DSAParams:
    """One drawn transformation: a family and its per-sample parameters (batch of 1 if shared)."""

    family: str
    values: dict[str, torch.Tensor]
    # device -> these parameters there: a Siamese draw applied to a real and a synthetic batch
    # is copied to the device once, not once per batch (each copy of a CPU tensor is a host sync)
    _copies: dict = field(default_factory=dict, repr=False, compare=False)

    def to(self, device: torch.device | str) -> "DSAParams":
        device = torch.device(device)
        if all(v.device == device for v in self.values.values()):
            return self
        key = str(device)
        if key not in self._copies:
            # one copy for all of a family's values (up to three tensors of one length)
            names = list(self.values)
            packed = torch.stack([self.values[k].to(torch.float32) for k in names]).to(device)
            self._copies[key] = DSAParams(self.family, {k: p.to(self.values[k].dtype)
                                                        for k, p in zip(names, packed.unbind(0))})
        return self._copies[key]


class DSAugment:
    """The six DSA families with the paper's parameters.

    Args:
        strategy: families joined by ``_`` (default ``color_crop_cutout_flip_scale_rotate``).
        flip: whether ``flip`` may be drawn (no flip for digits, where it changes the class).
    """

    scale = 1.2          # scale factors U[1/1.2, 1.2]
    rotate_degrees = 15  # rotation U[-15, 15] degrees
    crop_ratio = 0.125   # translation up to 1/8 of the side, zero padding
    cutout_ratio = 0.5   # cutout square of half the side
    brightness = 1.0
    saturation = 2.0
    contrast = 0.5

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", *, flip: bool = True):
        families = [f for f in strategy.split("_") if f]
        unknown = [f for f in families if f not in DSA_FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown DSA families {unknown or strategy!r}; allowed: {', '.join(DSA_FAMILIES)}")
        if not flip:
            families = [f for f in families if f != "flip"]
        self.families = tuple(families)

    def __repr__(self) -> str:
        return f"DSAugment({'_'.join(self.families)!r})"

    # -- drawing parameters -------------------------------------------------------------------
    def sample(self, batch: int, generator: torch.Generator, *, family: str | None = None) -> DSAParams:
        """Draw a family (unless given) and ``batch`` parameter sets for it (1 = Siamese/shared)."""
        if family is None:
            family = self.families[int(torch.randint(len(self.families), (1,), generator=generator))]
        u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
        if family == "scale":
            s = self.scale
            values = {"sx": u(batch) * (s - 1 / s) + 1 / s, "sy": u(batch) * (s - 1 / s) + 1 / s}
        elif family == "rotate":
            values = {"theta": (u(batch) - 0.5) * 2 * math.radians(self.rotate_degrees)}
        elif family == "flip":
            values = {"flip": u(batch) < 0.5}
        elif family == "color":
            values = {"brightness": u(batch) - 0.5, "saturation": u(batch) * self.saturation,
                      "contrast": u(batch) + self.contrast}
        elif family in ("crop", "cutout"):
            values = {"x": u(batch), "y": u(batch)}
        else:
            raise ValueError(f"unknown DSA family {family!r}")
        return DSAParams(family, values)

    # -- applying them ------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, params: DSAParams) -> torch.Tensor:
        p = params.to(x.device)
        v = {k: t.to(x.dtype) if t.is_floating_point() else t for k, t in p.values.items()}
        n = x.shape[0]
        expand = lambda t: t.expand(n) if t.shape[0] == 1 else t  # noqa: E731
        if p.family == "scale":
            zero = torch.zeros(n, device=x.device, dtype=x.dtype)
            theta = torch.stack([torch.stack([expand(v["sx"]), zero, zero], 1),
                                 torch.stack([zero, expand(v["sy"]), zero], 1)], 1)
            return _warp(x, theta)
        if p.family == "rotate":
            t = expand(v["theta"])
            zero = torch.zeros_like(t)
            theta = torch.stack([torch.stack([t.cos(), t.sin(), zero], 1),
                                 torch.stack([-t.sin(), t.cos(), zero], 1)], 1)
            return _warp(x, theta)
        if p.family == "flip":
            mask = expand(v["flip"]).view(-1, 1, 1, 1)
            return torch.where(mask, x.flip(3), x)
        if p.family == "color":
            x = x + expand(v["brightness"]).view(-1, 1, 1, 1)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * expand(v["saturation"]).view(-1, 1, 1, 1) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            return (x - mean) * expand(v["contrast"]).view(-1, 1, 1, 1) + mean
        if p.family == "crop":
            return _translate(x, expand(v["x"]), expand(v["y"]), self.crop_ratio)
        if p.family == "cutout":
            return _cutout(x, expand(v["x"]), expand(v["y"]), self.cutout_ratio)
        raise ValueError(f"unknown DSA family {p.family!r}")

    def siamese(self, generator: torch.Generator) -> DSAParams:
        """One parameter set shared by every image of every batch it is applied to."""
        return self.sample(1, generator)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Non-Siamese use (evaluation): one family, per-image parameters."""
        return self.apply(x, self.sample(x.shape[0], generator))


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _translate(x: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shift by whole pixels in [-ratio*side, ratio*side], zero-filled (differentiable in x)."""
    n, _, h, w = x.shape
    max_x, max_y = int(w * ratio + 0.5), int(h * ratio + 0.5)
    sx = (ux * (2 * max_x + 1)).floor().long().clamp(max=2 * max_x) - max_x
    sy = (uy * (2 * max_y + 1)).floor().long().clamp(max=2 * max_y) - max_y
    padded = F.pad(x, (max_x, max_x, max_y, max_y))
    rows = torch.arange(h, device=x.device).view(1, h, 1) + max_y - sy.view(n, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + max_x - sx.view(n, 1, 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # padded[b, :, rows, cols] for every b -> (n, h, w, c)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero a ``ratio`` x side square centred at a uniformly drawn pixel (clipped at the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = (uy * h).floor().long().clamp(max=h - 1).view(n, 1, 1) - ch // 2
    left = (ux * w).floor().long().clamp(max=w - 1).view(n, 1, 1) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DCAugment:
    """The DC paper's evaluation augmentation: per image one family drawn from ``strategy`` —
    crop (shift up to 4 px), scale (+-20 %), rotate (+-45 degrees) or Gaussian noise
    (std 0.001). The DC code uses ``crop_scale_rotate`` for MNIST and ``crop_noise`` for
    BatchNorm networks. What moves in is filled with the batch's channel mean, as there. Not
    differentiable by design (it only augments training batches of evaluated networks)."""

    FAMILIES = ("crop", "scale", "rotate", "noise")
    shift = 4
    scale = 0.2
    rotate_degrees = 45
    noise_std = 0.001

    def __init__(self, strategy: str = "crop_scale_rotate_noise"):
        families = tuple(f for f in strategy.split("_") if f)
        unknown = [f for f in families if f not in self.FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown DC augmentation {unknown or strategy!r}; allowed: {', '.join(self.FAMILIES)}")
        self.families = families

    def __repr__(self) -> str:
        return f"DCAugment({'_'.join(self.families)!r})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        pick = torch.randint(len(self.families), (n,), generator=generator)
        choice = torch.tensor([self.FAMILIES.index(f) for f in self.families])[pick]
        u = torch.rand(n, 3, generator=generator)
        # One affine matrix per image: identity for the noise choice.
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        crop = choice == 0
        theta[crop, 0, 2] = ((u[crop, 0] * 2 - 1) * self.shift).round() * 2 / (w - 1)
        theta[crop, 1, 2] = ((u[crop, 1] * 2 - 1) * self.shift).round() * 2 / (h - 1)
        sc = choice == 1
        theta[sc, 0, 0] = 1 + (u[sc, 0] * 2 - 1) * self.scale
        theta[sc, 1, 1] = 1 + (u[sc, 1] * 2 - 1) * self.scale
        rot = choice == 2
        ang = (u[rot, 2] * 2 - 1) * math.radians(self.rotate_degrees)
        theta[rot, 0, 0], theta[rot, 0, 1] = ang.cos(), ang.sin()
        theta[rot, 1, 0], theta[rot, 1, 1] = -ang.sin(), ang.cos()
        eps = torch.randn(x.shape, generator=generator)
        # the draws go to the device in one copy (each copy of a CPU tensor is a host sync)
        packed = torch.cat([theta.flatten(), (choice == 3).to(theta.dtype), eps.flatten()]).to(x.device)
        theta, noise, eps = packed.split([theta.numel(), n, eps.numel()])
        theta, eps = theta.view(n, 2, 3).to(x.dtype), eps.view(x.shape).to(x.dtype) * self.noise_std
        fill = x.mean(dim=(0, 2, 3), keepdim=True)
        out = _warp(x - fill, theta) + fill
        return torch.where(noise.view(-1, 1, 1, 1) > 0.5, x + eps, out)


class CropFlip:
    """Plain crop + flip per image (``RandomCrop(size, padding=size/8)`` then a horizontal flip
    with probability 1/2, no flip for digits): SelMatch's augmentation of its selected images."""

    def __init__(self, *, flip: bool = True):
        self.flip = flip
        self._dsa = DSAugment("crop_flip", flip=flip)

    def __repr__(self) -> str:
        return f"CropFlip(flip={self.flip})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self._dsa.apply(x, self._dsa.sample(x.shape[0], generator, family="crop"))
        if self.flip:
            x = self._dsa.apply(x, self._dsa.sample(x.shape[0], generator, family="flip"))
        return x


class CombinedAugment:
    """SelMatch's evaluation augmentation: ``distilled`` images (a mask over the set) get
    ``on_distilled`` (DSA), the others ``on_selected`` (crop + flip). Called with the minibatch's
    indices into the set (``needs_indices``: :func:`dc_plugins.training.train_epoch` passes them)."""

    needs_indices = True

    def __init__(self, distilled: torch.Tensor, on_distilled, on_selected):
        self.distilled = torch.as_tensor(distilled, dtype=torch.bool).cpu()
        self.on_distilled, self.on_selected = on_distilled, on_selected

    def __repr__(self) -> str:
        return (f"CombinedAugment({int(self.distilled.sum())} distilled: {self.on_distilled!r}; "
                f"{int((~self.distilled).sum())} selected: {self.on_selected!r})")

    def __call__(self, x: torch.Tensor, generator: torch.Generator, indices: torch.Tensor) -> torch.Tensor:
        mask = self.distilled[indices.cpu()].to(x.device)
        out = x.clone()
        if mask.any():
            out[mask] = self.on_distilled(x[mask], generator)
        if (~mask).any():
            out[~mask] = self.on_selected(x[~mask], generator)
        return out
