"""Coreset baselines: random, herding, k-center and forgetting selection of real images.

The selection rules work on plain tensors (features, forgetting counts) so that they can be
checked against brute force; :class:`CoresetSelector` wraps them with the matchers' interface
(``run()`` -> :class:`SyntheticSet`).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn as nn

from .config import SelectionConfig
from .data import ClassIndex, make_generator
from .fingerprint import data_fingerprint
from .models import ConvNetSpec, make_convnet
from .synthetic import SyntheticSet

__all__ = [
    "herding",
    "k_center",
    "most_forgotten",
    "ForgettingTracker",
    "train_reference",
    "embed",
    "CoresetSelector",
]


def herding(features: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy herding (Welling 2009): each pick brings the running mean of the selected
    features closest to the mean of all of them. Returns ``n`` row indices in pick order."""
    _check_n(features, n)
    mu = features.mean(0)
    selected: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    for k in range(1, n + 1):
        # distance of the mean after adding each candidate
        dist = ((mu - (running + features) / k) ** 2).sum(1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        selected.append(i)
        available[i] = False
        running += features[i]
    return torch.tensor(selected, dtype=torch.long)


def k_center(features: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy k-center (farthest point): start from the point nearest the mean, then repeatedly
    take the point farthest from its nearest selected one. Returns ``n`` indices in pick order."""
    _check_n(features, n)
    first = int(((features - features.mean(0)) ** 2).sum(1).argmin())
    selected = [first]
    nearest = ((features - features[first]) ** 2).sum(1)
    for _ in range(1, n):
        i = int(nearest.argmax())
        selected.append(i)
        nearest = torch.minimum(nearest, ((features - features[i]) ** 2).sum(1))
    return torch.tensor(selected, dtype=torch.long)


def most_forgotten(counts: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """The ``n`` samples forgotten most often (ties broken at random, reproducibly)."""
    _check_n(counts.view(-1, 1), n)
    jitter = torch.rand(counts.shape[0], generator=generator)  # < 1: only orders equal counts
    return torch.argsort(counts.float().cpu() + jitter, descending=True)[:n]


def _check_n(features: torch.Tensor, n: int) -> None:
    if n <= 0 or n > features.shape[0]:
        raise ValueError(f"cannot select {n} of {features.shape[0]} samples (need 1 <= n <= {features.shape[0]})")


class ForgettingTracker:
    """Counts forgetting events (Toneva et al. 2019): a sample classified correctly at one
    presentation and wrongly at its next."""

    def __init__(self, n: int, device: torch.device | str | None = None):
        # On the data's device: counting then never waits for the GPU.
        self.previous = torch.zeros(n, dtype=torch.bool, device=device)
        self.counts = torch.zeros(n, dtype=torch.long, device=device)

    def update(self, indices: torch.Tensor, correct: torch.Tensor) -> None:
        indices, correct = indices.to(self.counts.device), correct.to(self.counts.device)
        self.counts[indices] += (self.previous[indices] & ~correct).long()
        self.previous[indices] = correct


def train_reference(images: torch.Tensor, labels: torch.Tensor, spec: ConvNetSpec, *, epochs: int,
                    lr: float, batch: int, generator: torch.Generator,
                    progress: bool = False) -> tuple[nn.Module, torch.Tensor]:
    """Train a ConvNet on real data, recording forgetting events; returns (network, counts)."""
    from tqdm.auto import tqdm

    net = make_convnet(spec, generator=generator, device=images.device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    tracker = ForgettingTracker(images.shape[0], images.device)
    for _ in tqdm(range(epochs), desc="reference network", disable=not progress, unit="epoch"):
        order = torch.randperm(images.shape[0], generator=generator).to(images.device)
        net.train()
        for start in range(0, images.shape[0], batch):
            idx = order[start:start + batch]
            out = net(images[idx])
            loss = nn.functional.cross_entropy(out, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tracker.update(idx, (out.argmax(1) == labels[idx]).detach())
    return net, tracker.counts


@torch.no_grad()
def embed(net: nn.Module, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    net.eval()
    return torch.cat([net.embed(images[i:i + batch]) for i in range(0, images.shape[0], batch)])


# herding, k-center and forgetting of one dataset share one reference network per process
_REFERENCE_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


class CoresetSelector:
    """Selects ``ipc`` real images per class; same interface as the matchers (``run``)."""

    def __init__(self, method: str, real: ClassIndex, ipc: int, *, spec: ConvNetSpec,
                 config: SelectionConfig | None = None, seed: int = 0, dataset: str = "",
                 mean: tuple = (), std: tuple = ()):
        if method not in ("random", "herding", "kcenter", "forgetting"):
            raise ValueError(f"unknown selection method {method!r}; allowed: random, herding, kcenter, forgetting")
        if ipc <= 0:
            raise ValueError(f"ipc must be a positive integer, got {ipc}")
        for c in real.classes:
            if real.count(c) < ipc:
                raise ValueError(f"{method} selection needs ipc={ipc} real images of class {c}, "
                                 f"which has only {real.count(c)}")
        self.method, self.real, self.ipc, self.spec = method, real, ipc, spec
        self.config = config or SelectionConfig(reference_epochs=20)
        self.seed, self.dataset, self.mean, self.std = seed, dataset, tuple(mean), tuple(std)
        self.generator = make_generator(seed)
        self.iteration = 0

    def _scores(self, progress: bool):
        if self.method == "random":
            return None
        # keyed on the data's content, not its address: the suite and the CLI load the dataset
        # again for every run, and an address key retrained the reference network (12-15 minutes
        # on CIFAR-10-JPEG here) for each of herding, k-center and forgetting at every ipc
        key = (data_fingerprint(self.real.images, self.real.labels), self.spec,
               self.config.reference_epochs or 1, self.config.reference_lr, self.config.reference_batch, self.seed)
        if key not in _REFERENCE_CACHE:
            # Its own generator: the selection draws the same whether or not the cache was hit.
            net, counts = train_reference(self.real.images, self.real.labels, self.spec, epochs=key[2],
                                          lr=key[3], batch=key[4], generator=make_generator(self.seed),
                                          progress=progress)
            _REFERENCE_CACHE.clear()  # one network at a time: enough for a suite over methods
            _REFERENCE_CACHE[key] = (embed(net, self.real.images), counts)
        features, counts = _REFERENCE_CACHE[key]
        return counts if self.method == "forgetting" else features

    def select(self, progress: bool = False) -> torch.Tensor:
        """Indices into the real data, ``ipc`` per class, classes in order."""
        scores = self._scores(progress)
        chosen = []
        for c in self.real.classes:
            idx = self.real.indices(c)
            if self.method == "random":
                pick = torch.randperm(idx.numel(), generator=self.generator)[:self.ipc]
            elif self.method == "herding":
                pick = herding(scores[idx], self.ipc)
            elif self.method == "kcenter":
                pick = k_center(scores[idx], self.ipc)
            else:
                pick = most_forgotten(scores[idx.to(scores.device)], self.ipc, self.generator)
            chosen.append(idx[pick.to(idx.device)])
        return torch.cat(chosen)

    def run(self, iterations: int = 0, *, progress: bool = True, **_ignored) -> SyntheticSet:
        """Select and return the set (``iterations`` and checkpoint options do not apply)."""
        idx = self.select(progress)
        cfg = {"selection": asdict(self.config), "net": str(self.spec)}
        return SyntheticSet(self.real.images[idx].clone(), self.real.labels[idx].clone(), self.method,
                            self.dataset, self.ipc, self.seed, cfg, self.mean, self.std)
