"""What every matcher shares: the learnable set, its optimiser, the run loop with checkpoints."""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import torch

from ..augment import DSAugment
from ..config import AUTOCAST_DTYPES, MatchingConfig, matching_fingerprint
from ..data import ClassIndex, make_generator
from ..fingerprint import check_fingerprint, config_hash, data_fingerprint
from ..io import atomic_path, load_torch_file
from ..models import ConvNetSpec, make_convnet
from ..synthetic import SyntheticSet

__all__ = ["Matcher", "NonFiniteLossError", "CorruptCheckpointError", "initial_images"]


class NonFiniteLossError(FloatingPointError):
    """Matching produced a NaN/inf loss or images; the last good checkpoint is kept."""


class CorruptCheckpointError(ValueError):
    """A matcher checkpoint cannot be read back: truncated, edited, or not a checkpoint."""


def initial_images(real: ClassIndex, ipc: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """``(classes * ipc, C, H, W)``: Gaussian noise, or ``ipc`` random real images per class."""
    shape = (real.num_classes * ipc, *real.images.shape[1:])
    if init == "noise":
        return torch.randn(shape, generator=generator).to(real.device)
    if init == "real":
        for c in real.classes:
            if real.count(c) < ipc:
                raise ValueError(f"init='real' needs ipc={ipc} images of class {c}, which has {real.count(c)}")
        return torch.cat(real.gather([real.draw_indices(c, ipc, generator) for c in real.classes])).clone()
    raise ValueError(f"unknown init {init!r}; allowed: noise, real")


class Matcher(ABC):
    """Learns ``ipc`` synthetic images per class by matching something of the real data.

    Subclasses implement :meth:`step` (one outer iteration, returns the loss). All randomness
    (initialisation, network draws, real batches, augmentation) comes from one generator whose
    state is checkpointed, so a resumed run ends with the same set as an uninterrupted one.
    """

    method: str = "?"

    def __init__(self, real: ClassIndex, ipc: int, *, spec: ConvNetSpec, config: MatchingConfig,
                 seed: int = 0, dataset: str = "", mean: tuple = (), std: tuple = (),
                 dsa: bool = False, flip: bool = True):
        if ipc <= 0:
            raise ValueError(f"ipc must be a positive integer, got {ipc}")
        if spec.channels != real.images.shape[1] or spec.image_size != real.images.shape[-1]:
            raise ValueError(
                f"network expects {spec.channels} channel(s) at {spec.image_size} px, the data has "
                f"{real.images.shape[1]} channel(s) at {real.images.shape[-1]} px")
        if config.autocast is not None and config.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"matching.autocast must be one of {', '.join(AUTOCAST_DTYPES)} or None (float32), "
                             f"got {config.autocast!r}")
        empty = [c for c in real.classes if real.count(c) == 0]
        if empty:
            raise ValueError(f"classes {empty} have no real images to match")
        self.real, self.ipc, self.spec, self.config = real, ipc, spec, config
        self.seed, self.dataset, self.mean, self.std = seed, dataset, tuple(mean), tuple(std)
        self.device = real.device
        self.generator = make_generator(seed)
        self.augment = DSAugment(config.dsa_strategy, flip=flip) if dsa else None
        self.images = initial_images(real, ipc, config.init or "noise", self.generator).requires_grad_(True)
        self.labels = torch.arange(real.num_classes, device=self.device).repeat_interleave(ipc)
        self.optimizer = torch.optim.SGD([self.images], lr=config.lr_img, momentum=config.momentum_img)
        self.iteration = 0
        self.losses: list[float] = []

    # -- pieces for subclasses ----------------------------------------------------------------
    def new_network(self) -> torch.nn.Module:
        return make_convnet(self.spec, generator=self.generator, device=self.device)

    def class_images(self, c: int) -> torch.Tensor:
        return self.images[c * self.ipc:(c + 1) * self.ipc]

    def precision(self):
        """The context :meth:`run` takes each step in: ``torch.autocast`` when
        ``matching.autocast`` is set (convolutions and products in bf16/fp16; the images, their
        optimiser and the losses stay float32), else nothing."""
        import contextlib

        if self.config.autocast is None:
            return contextlib.nullcontext()
        # cache_enabled=False: autocast keeps the low-precision copy of every weight for the whole
        # region, so a network trained inside it (DC's inner loop) would keep running forward with
        # its first weights (measured: the loss did not move over 30 epochs)
        return torch.autocast(self.device.type, dtype=getattr(torch, AUTOCAST_DTYPES[self.config.autocast]),
                              cache_enabled=False)

    @abstractmethod
    def step(self) -> float:
        """One outer iteration; updates ``self.images`` and returns the loss."""

    # -- the set --------------------------------------------------------------------------------
    def synthetic_set(self) -> SyntheticSet:
        return SyntheticSet(self.images.detach().clone(), self.labels.clone(), self.method, self.dataset,
                            self.ipc, self.seed, self.describe(), self.mean, self.std)

    def describe(self) -> dict:
        return {"matching": matching_fingerprint(self.config), "net": str(self.spec), "iterations": self.iteration}

    # -- checkpoints ----------------------------------------------------------------------------
    def fingerprint(self) -> dict:
        """Everything the learned set depends on (see :mod:`dc_plugins.fingerprint`): a
        checkpoint is resumed only by a matcher with the same fingerprint. The number of
        iterations is not part of it (resuming to a larger total is the point of resuming)."""

        if getattr(self, "_data_hash", None) is None:
            self._data_hash = data_fingerprint(self.real.images, self.real.labels)
        return {"method": self.method, "dataset": self.dataset, "ipc": self.ipc, "seed": self.seed,
                "net": str(self.spec), "matching": matching_fingerprint(self.config), "data": self._data_hash}

    def state_dict(self) -> dict:
        fingerprint = self.fingerprint()
        return {"method": self.method, "iteration": self.iteration, "images": self.images.detach().cpu(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "losses": list(self.losses), "fingerprint": fingerprint,
                "config_hash": config_hash(fingerprint)}

    def load_state_dict(self, state: dict, *, source: str = "checkpoint") -> None:
        """Continue from ``state``; refused with a :class:`~dc_plugins.fingerprint.ConfigMismatchError`
        naming the differing fields (old -> new) when it is of another configuration."""
        check_fingerprint(state.get("fingerprint"), self.fingerprint(), source,
                          "delete it (or use another output folder) to start over")
        if tuple(state["images"].shape) != tuple(self.images.shape):
            raise ValueError(f"{source} images {tuple(state['images'].shape)} do not match "
                             f"{tuple(self.images.shape)} (other ipc or data shape?)")
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.iteration = int(state["iteration"])
        self.losses = list(state["losses"])

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load a checkpoint written by :meth:`save_checkpoint` (``weights_only=True``: tensors
        and plain containers only, nothing in the file is executed)."""
        state = load_torch_file(path, "matcher checkpoint", CorruptCheckpointError)
        if not isinstance(state, dict) or not {"images", "optimizer", "generator", "iteration"} <= set(state):
            raise CorruptCheckpointError(f"{path} is not a matcher checkpoint file: fields missing")
        self.load_state_dict(state, source=f"checkpoint {path}")

    def _non_finite(self, what: str, checkpoint) -> NonFiniteLossError:
        where = (f"; the last good checkpoint ({str(checkpoint)!r}) is kept"
                 if checkpoint is not None and Path(checkpoint).exists() else "")
        return NonFiniteLossError(
            f"{self.method}: {what} at iteration {self.iteration + 1}{where}. "
            f"Lower matching.lr_img (now {self.config.lr_img}) or check the data for NaNs.")

    # -- the loop -------------------------------------------------------------------------------
    def run(self, iterations: int, *, checkpoint: str | os.PathLike | None = None,
            checkpoint_every_s: float = 300.0, resume: bool = False, progress: bool = True,
            callback: Callable[["Matcher"], None] | None = None) -> SyntheticSet:
        """Run until ``iterations`` outer iterations are done in total.

        With ``checkpoint`` the state is saved there every ``checkpoint_every_s`` seconds and at
        the end; ``resume=True`` continues from it if it exists. A non-finite loss stops the run
        with :class:`NonFiniteLossError`, leaving the last good checkpoint in place.
        """
        from tqdm.auto import tqdm

        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load_checkpoint(checkpoint)
        last_save = time.monotonic()
        bar = tqdm(total=iterations, initial=min(self.iteration, iterations), disable=not progress,
                   desc=f"{self.method} ipc={self.ipc}", unit="it", dynamic_ncols=True)
        try:
            while self.iteration < iterations:
                try:
                    with self.precision():
                        loss = self.step()
                except NonFiniteLossError as err:  # raised inside, e.g. by the inner-loop training
                    raise self._non_finite(str(err), checkpoint) from None
                if not math.isfinite(loss) or not torch.isfinite(self.images).all():
                    raise self._non_finite(f"loss became {loss}", checkpoint)
                self.losses.append(loss)
                self.iteration += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}")
                if callback is not None:
                    callback(self)
                if checkpoint is not None and time.monotonic() - last_save >= checkpoint_every_s:
                    self.save_checkpoint(checkpoint)
                    last_save = time.monotonic()
        finally:
            bar.close()
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return self.synthetic_set()
