"""The evaluation protocol of the condensation papers.

Fresh, randomly initialised networks are trained on the condensed set only (SGD lr 0.01,
momentum 0.9, weight decay 5e-4, batch 256, learning rate x0.1 once at half the epochs) and
tested on the real test set; the report is mean +- std over the networks.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from .augment import DCAugment, DSAugment
from .config import EvalConfig
from .data import ImageDataset, make_generator
from .models import ConvNetSpec, make_convnet
from .synthetic import SyntheticSet
from .training import Augment, accuracy, train_epoch

__all__ = ["EvalResult", "evaluation_augment", "train_on_set", "evaluate_set"]

# Digits change class when mirrored: DSA leaves out the flip family for them.
DIGIT_DATASETS = ("mnist", "usps", "svhn", "digits")


@dataclass
class EvalResult:
    accuracies: list[float]
    epochs: int
    augment: str
    net: str
    seconds: float = 0.0
    train_accuracies: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies) if self.accuracies else float("nan")

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(accuracy_mean=self.mean, accuracy_std=self.std)
        return d

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f} % ({len(self.accuracies)} nets, {self.epochs} epochs, aug={self.augment})"


def evaluation_augment(kind: str, method: str, dataset: str, spec: ConvNetSpec) -> tuple[str, Augment | None]:
    """Resolve ``auto``: DSA for sets learned with DSA (dsa, dm); DC's augmentation for digit
    data and BatchNorm networks (as the DC paper); none otherwise."""
    if kind == "auto":
        if method in ("dsa", "dm", "mtt"):
            kind = "dsa"
        elif dataset in DIGIT_DATASETS or spec.norm == "batch":
            kind = "dc"
        else:
            kind = "none"
    if kind == "dsa":
        return kind, DSAugment(flip=dataset not in DIGIT_DATASETS)
    if kind == "dc":
        # the DC code's choices: crop+noise for BatchNorm nets, crop/scale/rotate for digits
        if spec.norm == "batch":
            return kind, DCAugment("crop_noise")
        return kind, DCAugment("crop_scale_rotate" if dataset in DIGIT_DATASETS else "crop_scale_rotate_noise")
    if kind == "none":
        return kind, None
    raise ValueError(f"unknown augmentation {kind!r}; allowed: auto, dsa, dc, none")


def train_on_set(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                 config: EvalConfig, generator: torch.Generator, augment: Augment | None = None,
                 progress: bool = False) -> torch.nn.Module:
    """The protocol's training: SGD with momentum and weight decay, lr x0.1 at half the epochs."""
    from tqdm.auto import tqdm

    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2], gamma=0.1)
    for _ in tqdm(range(epochs), desc="train", disable=not progress, leave=False, unit="ep"):
        train_epoch(net, images, labels, opt, batch=config.batch, generator=generator, augment=augment)
        sched.step()
    return net


def evaluate_set(syn: SyntheticSet, test: ImageDataset, *, config: EvalConfig | None = None,
                 spec: ConvNetSpec | None = None, epochs: int | None = None, seed: int = 0,
                 progress: bool = True) -> EvalResult:
    """Train ``config.networks`` fresh networks on ``syn`` and test them on ``test``."""
    from tqdm.auto import tqdm

    config = config or EvalConfig()
    device = test.images.device
    if spec is None:
        spec = ConvNetSpec.parse(config.net or syn.config.get("net", "convnet"))
    spec = spec.with_data(test.channels, test.num_classes, test.image_size)
    syn.check_compatible(spec.channels, spec.image_size, spec.num_classes)
    kind, augment = evaluation_augment(config.augment, syn.method, test.info.name, spec)
    epochs = epochs or config.epochs or (1000 if augment is not None else 300)
    images, labels = syn.images.detach().to(device), syn.labels.to(device)
    generator = make_generator(seed)
    start = time.perf_counter()
    accs, train_accs = [], []
    for _ in tqdm(range(config.networks), desc=f"evaluate {syn.method}", disable=not progress, unit="net"):
        net = make_convnet(spec, generator=generator, device=device)
        train_on_set(net, images, labels, epochs=epochs, config=config, generator=generator,
                     augment=augment, progress=progress)
        accs.append(accuracy(net, test.images, test.labels))
        train_accs.append(accuracy(net, images, labels))
    return EvalResult(accs, epochs, kind, str(spec), time.perf_counter() - start, train_accs)
