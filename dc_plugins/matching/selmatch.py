"""SelMatch (Lee et al., ICML 2024): selection-based initialisation and partial update for
trajectory matching, so that distillation keeps its lead at large budgets.

1. **Difficulty scores**, one per real training sample: forgetting events counted while a
   reference ConvNet trains on the data (``trajectory.selmatch.scores: forgetting``;
   :func:`~dc_plugins.coreset.train_reference`), or a file of one score per sample in the
   dataset's order (``.pt``/``.pth`` holding a 1-d tensor, ``.npy``, or text with one number per
   line; e.g. C-scores, with ``harder_is_higher: false``). Ties are broken by a seeded draw.
2. **Sliding window**: per class, samples ranked hardest first; the window of ``ipc`` samples
   starting at fraction ``beta`` of the class (:func:`window_indices`). With ``beta`` unset each
   of ``betas`` is tried: a fresh network trains ``window_epochs`` epochs on the window (drawn
   from the real data minus a stratified validation split, crop + flip) and is scored on the
   validation split; the best ``beta`` (ties: the smaller) is kept (:func:`search_beta`). The
   window at that ``beta`` (over all the real data) initialises the set.
3. **Partial update**: per class, the ``1 - alpha`` hardest images of the window stay the real
   images (D_select); the ``alpha`` part (D_distill) learns by trajectory matching, the student
   training on their union. ``alpha = 0`` is pure selection (no iteration runs), ``alpha = 1``
   is MTT from the window.
4. **Combined augmentation** at evaluation (:class:`~dc_plugins.augment.CombinedAugment`): DSA
   on D_distill, crop + flip on D_select; the set records which is which
   (``config["distilled"]``).

Selection draws from its own generator (``seed`` + 1), never from the matcher's, so that with
``alpha = 1`` the iterations are MTT's own from the same initialisation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..augment import CropFlip
from ..config import EvalConfig
from ..data import ClassIndex, make_generator
from ..evaluation import train_on_set
from ..models import ConvNetSpec, make_convnet
from ..synthetic import SyntheticSet
from ..training import accuracy
from .trajectory import TrajectoryMatcher

__all__ = ["SelMatchMatcher", "load_scores", "forgetting_scores", "window_indices", "search_beta",
           "stratified_holdout"]


def load_scores(path: str | Path, n: int) -> torch.Tensor:
    """One float score per training sample from ``path`` (.pt/.pth 1-d tensor, .npy, or text with
    one number per line); a wrong count or a non-finite score is an error naming both."""
    import numpy as np

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"difficulty scores file {str(path)!r} does not exist "
                                f"(trajectory.selmatch.scores: 'forgetting' or a file of one score per sample)")
    try:
        if path.suffix in (".pt", ".pth"):
            from ..io import load_torch_file
            scores = torch.as_tensor(load_torch_file(path, "scores", ValueError))
        elif path.suffix == ".npy":
            scores = torch.as_tensor(np.load(path, allow_pickle=False))
        else:
            scores = torch.as_tensor(np.loadtxt(path, dtype=np.float64, ndmin=1))
    except (ValueError, TypeError) as err:
        raise ValueError(f"difficulty scores file {str(path)!r} is not readable: {str(err).splitlines()[0]}") from None
    scores = scores.double().flatten() if scores.ndim <= 1 else scores
    if scores.ndim != 1 or scores.numel() != n:
        raise ValueError(f"difficulty scores file {str(path)!r} holds {tuple(scores.shape)} values; the training "
                         f"data has {n} samples (one score per sample, in the dataset's order)")
    if not torch.isfinite(scores).all():
        raise ValueError(f"difficulty scores file {str(path)!r} holds non-finite values")
    return scores


def forgetting_scores(images: torch.Tensor, labels: torch.Tensor, spec: ConvNetSpec, *, epochs: int,
                      generator: torch.Generator, progress: bool = False) -> torch.Tensor:
    """Forgetting events per sample during ``epochs`` of training a reference ConvNet."""
    from ..coreset import train_reference

    _, counts = train_reference(images, labels, spec, epochs=epochs, lr=0.01, batch=256, generator=generator,
                                progress=progress)
    return counts.double().cpu()


def stratified_holdout(labels: torch.Tensor, fraction: float, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep, held)`` indices: ``fraction`` of every class (at least one) held out."""
    keep, held = [], []
    labels = labels.cpu()
    for c in sorted(set(labels.tolist())):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        k = max(1, int(round(fraction * idx.numel())))
        held.append(idx[:k])
        keep.append(idx[k:])
    return torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values


def window_indices(scores: torch.Tensor, labels: torch.Tensor, classes: list[int], ipc: int, beta: float,
                   *, tiebreak: torch.Tensor) -> torch.Tensor:
    """Per class in ``classes`` (blocks of ``ipc``, hardest first within a block): the samples
    ranked ``[s, s + ipc)`` hardest first, ``s = floor(beta * n_c)`` clipped to ``n_c - ipc``.
    ``scores``: higher = harder; ``tiebreak``: a permutation rank per sample breaking ties."""
    if not 0 <= beta < 1:
        raise ValueError(f"window start beta must be in [0, 1), got {beta}")
    labels = labels.cpu()
    out = []
    for c in classes:
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < ipc:
            raise ValueError(f"class {c} has {idx.numel()} images; a window of ipc={ipc} needs that many")
        # hardest first; equal scores in the seeded tie-break order
        order = sorted(range(idx.numel()), key=lambda i: (-float(scores[idx[i]]), int(tiebreak[idx[i]])))
        start = min(int(beta * idx.numel()), idx.numel() - ipc)
        out.append(idx[torch.tensor(order[start:start + ipc])])
    return torch.cat(out)


def search_beta(images: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, classes: list[int], ipc: int,
                betas: list[float], *, spec: ConvNetSpec, epochs: int, val: torch.Tensor, train: torch.Tensor,
                tiebreak: torch.Tensor, generator: torch.Generator, flip: bool, progress: bool = False
                ) -> tuple[float, dict[float, float]]:
    """The ``beta`` whose window (over the ``train`` indices) trains the network that is most
    accurate on the ``val`` indices; returns it and every window's validation accuracy."""
    from tqdm.auto import tqdm

    accuracies: dict[float, float] = {}
    config = EvalConfig()
    sub_labels = labels[train]
    for beta in tqdm(betas, desc="selmatch window search", disable=not progress, unit="window"):
        window = train[window_indices(scores[train], sub_labels, classes, ipc, beta, tiebreak=tiebreak[train])]
        net = make_convnet(spec, generator=generator, device=images.device)
        train_on_set(net, images[window], labels[window], epochs=epochs, config=config, generator=generator,
                     augment=CropFlip(flip=flip))
        accuracies[float(beta)] = accuracy(net, images[val], labels[val])
    best = max(accuracies, key=lambda b: (accuracies[b], -b))
    return best, accuracies


class SelMatchMatcher(TrajectoryMatcher):
    """SelMatch on :class:`TrajectoryMatcher`: the set starts from the chosen window and only its
    ``alpha`` part learns. The selection (scores, window search) runs once, at the first
    iteration (or :meth:`prepare`), and is checkpointed with the set."""

    method = "selmatch"

    def __init__(self, real: ClassIndex, ipc: int, *, scores: torch.Tensor | None = None, **kwargs):
        super().__init__(real, ipc, **kwargs)
        sm = self.trajectory.selmatch
        unset = [n for n in ("alpha", "score_epochs", "window_epochs") if getattr(sm, n) is None]
        if sm.beta is None and not sm.betas:
            unset.append("betas")
        if unset:
            raise ValueError(f"trajectory.selmatch.{unset[0]} is unset; resolve the configuration with a preset")
        n = self.real.images.shape[0]
        if scores is not None:
            scores = torch.as_tensor(scores).double().flatten()
            if scores.numel() != n:
                raise ValueError(f"{scores.numel()} difficulty scores for {n} training samples")
        elif sm.scores != "forgetting":
            scores = load_scores(sm.scores, n)
        self._scores = None if scores is None else (scores if sm.harder_is_higher else -scores)
        self._given = None if scores is None else hashlib.sha256(scores.numpy().tobytes()).hexdigest()
        self.selection: dict | None = None

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        if self._given is not None:  # scores from a file or the caller: their content counts, not the path
            fp["scores_sha256"] = self._given
            fp["trajectory"]["selmatch"]["scores"] = "given"
        return fp

    # -- selection ------------------------------------------------------------------------------
    def scores(self) -> torch.Tensor:
        """Difficulty per real sample, higher = harder."""
        if self._scores is None:
            g = make_generator(self.seed + 1_000_033)
            self._scores = forgetting_scores(self.real.images, self.real.labels, self.spec,
                                             epochs=self.trajectory.selmatch.score_epochs, generator=g,
                                             progress=self.progress)
        return self._scores

    def prepare(self) -> dict:
        """Choose the window and set the images (once; kept in checkpoints)."""
        if self.selection is not None:
            return self.selection
        sm = self.trajectory.selmatch
        g = make_generator(self.seed + 1)
        scores = self.scores()
        labels = self.real.labels.cpu()
        tiebreak = torch.argsort(torch.randperm(labels.numel(), generator=g))
        accuracies: dict[float, float] = {}
        beta = sm.beta
        if beta is None:
            train, val = stratified_holdout(labels, sm.val_fraction, g)
            beta, accuracies = search_beta(self.real.images, self.real.labels, scores, self.real.classes, self.ipc,
                                           list(sm.betas), spec=self.spec, epochs=sm.window_epochs, val=val,
                                           train=train, tiebreak=tiebreak, generator=g, flip=self._flip(),
                                           progress=self.progress)
        window = window_indices(scores, labels, self.real.classes, self.ipc, beta, tiebreak=tiebreak)
        fixed = self.ipc - int(round(sm.alpha * self.ipc))
        distilled = torch.ones(self.ipc, dtype=torch.bool)
        distilled[:fixed] = False                     # the hardest of each class's window stay real
        distilled = distilled.repeat(self.real.num_classes)
        self._set_selection({"beta": float(beta), "accuracies": accuracies, "indices": window,
                             "distilled": distilled})
        return self.selection

    def _flip(self) -> bool:
        return self.augment is not None and "flip" in self.augment.families

    def _set_selection(self, selection: dict) -> None:
        with torch.no_grad():
            self.images.copy_(self.real.images[selection["indices"].to(self.device)])
        self.selection = selection
        self.update_mask = selection["distilled"].to(self.device)

    def step(self) -> float:
        self.prepare()
        return super().step()

    def run(self, iterations: int, **kwargs) -> SyntheticSet:
        self.progress = kwargs.get("progress", self.progress)
        checkpoint = kwargs.get("checkpoint")
        if kwargs.get("resume") and checkpoint is not None and Path(checkpoint).exists():
            self.load_checkpoint(checkpoint)  # before prepare: a resumed run never redoes the selection
            kwargs["resume"] = False
        self.prepare()
        if not bool(self.selection["distilled"].any()):  # alpha = 0: the selection is the set
            self.iteration = max(self.iteration, iterations)
            if kwargs.get("checkpoint") is not None:
                self.save_checkpoint(kwargs["checkpoint"])
            return self.synthetic_set()
        return super().run(iterations, **kwargs)

    # -- the set and checkpoints -----------------------------------------------------------------
    def synthetic_set(self) -> SyntheticSet:
        syn = super().synthetic_set()
        if self.selection is not None:
            syn.config.update(distilled=self.selection["distilled"].tolist(),
                              selmatch={"beta": self.selection["beta"],
                                        "window_accuracies": {str(b): a for b, a in
                                                              self.selection["accuracies"].items()},
                                        "indices": self.selection["indices"].tolist()})
        return syn

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.selection is not None:
            s = self.selection
            state["selection"] = {"beta": s["beta"], "indices": s["indices"].cpu(), "distilled": s["distilled"].cpu(),
                                  "betas": list(s["accuracies"]), "accuracies": list(s["accuracies"].values())}
        return state

    def load_state_dict(self, state: dict, **kwargs) -> None:
        images = state["images"]
        super().load_state_dict(state, **kwargs)
        sel = state.get("selection")
        if sel is not None:
            self._set_selection({"beta": float(sel["beta"]), "indices": sel["indices"].long(),
                                 "distilled": sel["distilled"].bool(),
                                 "accuracies": dict(zip(sel["betas"], sel["accuracies"], strict=True))})
            with torch.no_grad():
                self.images.copy_(images.to(self.device))  # the learned images, not the window's
