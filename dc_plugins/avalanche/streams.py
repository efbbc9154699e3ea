"""Digit streams for continual learning: SVHN -> MNIST -> USPS and the offline variants.

Every stream is built from :class:`~dc_plugins.data.ImageDataset` pairs (train, test), harmonised
to one image size and channel count, in one of three flavours:

* ``class`` (class-incremental): ``nc_benchmark`` with one dataset per experience, labels
  offset per domain (0-9, 10-19, 20-29 for three domains), no task labels;
* ``task`` (task-incremental): task label = experience index, labels 0-9 inside each task
  (for multi-head models);
* ``domain`` (domain-incremental): the same 10 digit labels in every experience, task label 0.

Streams:

* :func:`digit_stream`: the DC paper's SVHN -> MNIST -> USPS from ``torchvision.datasets``
  (``root``, ``download``), 32 px and 3 channels by default.
* :func:`offline_digit_stream`: MNIST-10k -> USPS -> scikit-learn digits, for machines without
  internet (MNIST-10k and USPS from a torchvision-layout ``root`` such as ``../shared/data``).
* :func:`sklearn_digits_stream`: scikit-learn's bundled 8x8 digits split into experiences of
  classes; ships with the dependencies, so it always works.
* :func:`stream_from_domains`: any list of (train, test) pairs, e.g. generated tensors.

Images are normalised per dataset with its usual mean/std (as in the condensation papers).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from ..data import ImageDataset, convert_images, load_dataset, subsample_per_class

__all__ = [
    "SCENARIOS",
    "PAPER_DOMAINS",
    "OFFLINE_DOMAINS",
    "harmonise",
    "load_domains",
    "stream_from_domains",
    "digit_stream",
    "offline_digit_stream",
    "sklearn_digits_stream",
]

SCENARIOS = ("class", "task", "domain")
PAPER_DOMAINS = ("svhn", "mnist", "usps")
OFFLINE_DOMAINS = ("mnist", "usps", "digits")


def _check_scenario(scenario: str) -> str:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; allowed: {', '.join(SCENARIOS)}")
    return scenario


def harmonise(data: ImageDataset, image_size: int | None, channels: int | None) -> ImageDataset:
    """Resize and convert channels (1 <-> 3) of an already loaded dataset."""
    images = convert_images(data.images, image_size=image_size, channels=channels)
    return ImageDataset(images, data.labels, data.info, data.split)


def load_domains(names: Sequence[str], root: str | os.PathLike | None, *, download: bool = False,
                 image_size: int | None = 32, channels: int | None = 3,
                 max_train_per_class: int | None = None,
                 generator: torch.Generator | None = None) -> list[tuple[ImageDataset, ImageDataset]]:
    """Load (train, test) of each named dataset with the engine's loaders (torchvision underneath).

    ``max_train_per_class`` keeps a random subset of each training set (drawn from ``generator``),
    a way to bound the cost of a stream; the test sets are always complete.
    Missing files raise :class:`~dc_plugins.data.DatasetNotFoundError` naming the files.
    """
    if max_train_per_class is not None and max_train_per_class <= 0:
        raise ValueError(f"max_train_per_class must be positive (or None for every image), got {max_train_per_class}")
    domains = []
    for name in names:
        train = load_dataset(name, root, True, image_size=image_size, channels=channels, download=download)
        test = load_dataset(name, root, False, image_size=image_size, channels=channels, download=download)
        if max_train_per_class is not None:
            train = subsample_per_class(train, max_train_per_class, generator or torch.Generator().manual_seed(0))
        domains.append((train, test))
    return domains


def _avalanche_dataset(data: ImageDataset):
    # Avalanche's own tensor helper: items are (Tensor, int, int) with targets and task labels.
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

    return _make_taskaware_tensor_classification_dataset(data.images.cpu(), data.labels.cpu().long())


def stream_from_domains(domains: Sequence[tuple[ImageDataset, ImageDataset]], scenario: str = "class"):
    """An Avalanche benchmark with one experience per (train, test) domain.

    All domains must share image size and channel count (see :func:`harmonise`) and use labels
    0..9 (or any 0..K-1). ``scenario``: ``class``, ``task`` or ``domain`` (see the module doc).
    """
    from avalanche.benchmarks import dataset_benchmark, nc_benchmark

    _check_scenario(scenario)
    if not domains:
        raise ValueError("a stream needs at least one (train, test) domain")
    shapes = {tuple(d.images.shape[1:]) for pair in domains for d in pair}
    if len(shapes) != 1:
        raise ValueError(f"domains have different image shapes {sorted(shapes)}; harmonise them to one "
                         f"image size and channel count first")
    train = [_avalanche_dataset(tr) for tr, _ in domains]
    test = [_avalanche_dataset(te) for _, te in domains]
    if scenario == "domain":
        return dataset_benchmark(train, test)
    return nc_benchmark(train, test, n_experiences=len(domains), task_labels=scenario == "task",
                        one_dataset_per_exp=True, shuffle=False,
                        class_ids_from_zero_in_each_exp=scenario == "task")


def digit_stream(root: str | os.PathLike, *, scenario: str = "class", download: bool = False,
                 image_size: int = 32, channels: int = 3, domains: Sequence[str] = PAPER_DOMAINS,
                 max_train_per_class: int | None = None):
    """The DC paper's SVHN -> MNIST -> USPS stream from torchvision (needs the files, or
    ``download=True`` with internet). Harmonised to ``image_size`` px and ``channels``."""
    _check_scenario(scenario)
    return stream_from_domains(load_domains(domains, root, download=download, image_size=image_size,
                                            channels=channels, max_train_per_class=max_train_per_class),
                               scenario)


def offline_digit_stream(root: str | os.PathLike, *, scenario: str = "class", image_size: int = 28,
                         channels: int = 1, max_train_per_class: int | None = None):
    """MNIST-10k -> USPS -> scikit-learn digits: three real digit domains that need no internet.

    ``root`` holds MNIST and USPS in torchvision's layout (``../shared/data`` on the project's
    machines, where "MNIST" is the official 10k test set re-split 8,000/2,000: call it
    MNIST-10k). scikit-learn's 8x8 digits ship with scikit-learn.
    """
    return digit_stream(root, scenario=scenario, download=False, image_size=image_size, channels=channels,
                        domains=OFFLINE_DOMAINS, max_train_per_class=max_train_per_class)


def sklearn_digits_stream(n_experiences: int = 5, *, scenario: str = "class", image_size: int = 8,
                          channels: int = 1):
    """scikit-learn's 8x8 digits (1,437 train / 360 test images) split into ``n_experiences``
    experiences of consecutive classes (5 -> {0,1}, {2,3}, ...). ``class`` or ``task``."""
    from avalanche.benchmarks import nc_benchmark

    _check_scenario(scenario)
    if scenario == "domain":
        raise ValueError("the scikit-learn digits stream has a single domain; allowed scenarios: class, task")
    if n_experiences not in (1, 2, 5, 10):
        raise ValueError(f"n_experiences must divide the 10 classes: 1, 2, 5 or 10, got {n_experiences}")
    train = harmonise(load_dataset("digits", train=True), image_size, channels)
    test = harmonise(load_dataset("digits", train=False), image_size, channels)
    return nc_benchmark(_avalanche_dataset(train), _avalanche_dataset(test), n_experiences=n_experiences,
                        task_labels=scenario == "task", shuffle=False, fixed_class_order=list(range(10)),
                        class_ids_from_zero_in_each_exp=scenario == "task")
