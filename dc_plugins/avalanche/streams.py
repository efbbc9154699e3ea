"""Digit streams for continual learning: SVHN -> MNIST -> USPS and the offline variants.

Every stream is built from :class:`~dc_plugins.data.ImageDataset` pairs (train, test), harmonised
to one image size and channel count, in one of three flavours:

* ``class`` (class-incremental): one dataset per experience, labels offset per domain (0-9,
  10-19, 20-29 for three domains), task label 0;
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
* :func:`class_split_stream` / :func:`load_class_split_stream`: one dataset split by classes
  (class-incremental), Avalanche's split-CIFAR-10 shape: 5 experiences x 2 classes, a class
  order fixed by the seed (or given), the training items optionally augmented for the learner
  (``crop-flip``: random crop with 4-px padding + horizontal flip, as Avalanche's SplitCIFAR10).
  E.g. CIFAR-10-JPEG from an image folder: ``load_class_split_stream("imagefolder", root)``.

Images are normalised per dataset with its usual mean/std (as in the condensation papers).

Built with Avalanche 0.6's current public API only: ``TaskAwareSupervisedClassificationDataset``
with ``targets`` and ``TaskLabels`` data attributes (items ``(Tensor, int, int)``, as the
deprecated generators made them), ``benchmark_from_datasets`` (one dataset per experience),
``class_incremental_benchmark`` (the scikit-learn digits split by classes),
``with_task_labels`` (``task_label``/``task_labels`` on experiences) and
``with_classes_timeline`` (``classes_in_this_experience``, ``classes_seen_so_far``, ...).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from ..data import ImageDataset, convert_images, load_dataset, subsample_per_class

__all__ = [
    "SCENARIOS",
    "class_order_for_seed",
    "class_split_stream",
    "load_class_split_stream",
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
                 generator: torch.Generator | None = None, **folder) -> list[tuple[ImageDataset, ImageDataset]]:
    """Load (train, test) of each named dataset with the engine's loaders (torchvision underneath).

    ``max_train_per_class`` keeps a random subset of each training set (drawn from ``generator``),
    a way to bound the cost of a stream; the test sets are always complete.
    Missing files raise :class:`~dc_plugins.data.DatasetNotFoundError` naming the files.
    ``folder``: keywords of image-folder datasets (``train_dir``, ``cache_dir``, ``progress``, ...).
    """
    if max_train_per_class is not None and max_train_per_class <= 0:
        raise ValueError(f"max_train_per_class must be positive (or None for every image), got {max_train_per_class}")
    domains = []
    for name in names:
        train = load_dataset(name, root, True, image_size=image_size, channels=channels, download=download, **folder)
        test = load_dataset(name, root, False, image_size=image_size, channels=channels, download=download, **folder)
        if max_train_per_class is not None:
            train = subsample_per_class(train, max_train_per_class, generator or torch.Generator().manual_seed(0))
        domains.append((train, test))
    return domains


def _avalanche_dataset(images: torch.Tensor, labels: torch.Tensor, task: int = 0, transform=None):
    """An Avalanche classification dataset of tensors: items ``(Tensor, int, int)`` with
    ``targets`` and task labels (``task`` for every item), through the public API.
    ``transform`` (on one image) is the ``train`` transform group; ``eval`` has none."""
    from avalanche.benchmarks.utils import (DataAttribute, TaskAwareSupervisedClassificationDataset, TaskLabels,
                                            TransformGroups)

    from .items import MemoryItems

    targets = [int(v) for v in labels.cpu().long()]
    base = MemoryItems(images.cpu(), targets, None)
    groups = TransformGroups({"train": transform, "eval": None}) if transform is not None else None
    return TaskAwareSupervisedClassificationDataset(
        [base], data_attributes=[DataAttribute(targets, "targets"), TaskLabels([int(task)] * len(targets))],
        transform_groups=groups)
    # (plain lists: Avalanche 0.6 cannot concatenate a list-backed attribute with a ConstantSequence)


def _sorted_class_lists(bm):
    """``with_classes_timeline`` stores sets; Avalanche's own models (``MultiHeadClassifier``
    indexes a tensor with ``classes_in_this_experience``) and the deprecated generators use
    sorted lists: store those. ``bm.n_classes`` (the distinct labels of the train stream) is
    kept as the deprecated ``NCScenario`` had it."""
    labels: set[int] = set()
    for stream in bm.streams.values():
        for exp in stream:
            for name in ("classes_in_this_experience", "previous_classes", "classes_seen_so_far", "future_classes"):
                if hasattr(exp, name):
                    setattr(exp, name, sorted(int(c) for c in getattr(exp, name)))
            if stream.name == "train":
                labels.update(int(c) for c in exp.dataset.targets.uniques)
    bm.n_classes = len(labels)
    return bm


def _benchmark(train: Sequence, test: Sequence):
    """``benchmark_from_datasets`` with task labels and the classes timeline on every experience."""
    from avalanche.benchmarks import benchmark_from_datasets, with_classes_timeline, with_task_labels

    return _sorted_class_lists(with_classes_timeline(with_task_labels(
        benchmark_from_datasets(train=list(train), test=list(test)))))


def stream_from_domains(domains: Sequence[tuple[ImageDataset, ImageDataset]], scenario: str = "class"):
    """An Avalanche benchmark with one experience per (train, test) domain.

    All domains must share image size and channel count (see :func:`harmonise`) and use labels
    0..9 (or any 0..K-1). ``scenario``: ``class``, ``task`` or ``domain`` (see the module doc).
    """
    _check_scenario(scenario)
    if not domains:
        raise ValueError("a stream needs at least one (train, test) domain")
    shapes = {tuple(d.images.shape[1:]) for pair in domains for d in pair}
    if len(shapes) != 1:
        raise ValueError(f"domains have different image shapes {sorted(shapes)}; harmonise them to one "
                         f"image size and channel count first")
    offset, train, test = 0, [], []
    for e, (tr, te) in enumerate(domains):
        task = e if scenario == "task" else 0
        shift = offset if scenario == "class" else 0
        train.append(_avalanche_dataset(tr.images, tr.labels + shift, task))
        test.append(_avalanche_dataset(te.images, te.labels + shift, task))
        offset += int(max(int(tr.labels.max()), int(te.labels.max()))) + 1
    return _benchmark(train, test)


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
    experiences of consecutive classes (5 -> {0,1}, {2,3}, ...). ``class`` (Avalanche's
    ``class_incremental_benchmark``, fixed class order) or ``task`` (task label = experience,
    labels 0.. inside each task)."""
    from avalanche.benchmarks import class_incremental_benchmark, with_task_labels

    _check_scenario(scenario)
    if scenario == "domain":
        raise ValueError("the scikit-learn digits stream has a single domain; allowed scenarios: class, task")
    if n_experiences not in (1, 2, 5, 10):
        raise ValueError(f"n_experiences must divide the 10 classes: 1, 2, 5 or 10, got {n_experiences}")
    train = harmonise(load_dataset("digits", train=True), image_size, channels)
    test = harmonise(load_dataset("digits", train=False), image_size, channels)
    if scenario == "class":
        bm = class_incremental_benchmark({"train": _avalanche_dataset(train.images, train.labels),
                                          "test": _avalanche_dataset(test.images, test.labels)},
                                         class_order=list(range(10)), num_experiences=n_experiences)
        return _sorted_class_lists(with_task_labels(bm))
    per = 10 // n_experiences
    parts = {"train": [], "test": []}
    for e in range(n_experiences):
        for name, data in (("train", train), ("test", test)):
            keep = (data.labels >= e * per) & (data.labels < (e + 1) * per)
            parts[name].append(_avalanche_dataset(data.images[keep], data.labels[keep] - e * per, e))
    return _benchmark(parts["train"], parts["test"])


def class_order_for_seed(num_classes: int, seed: int) -> list[int]:
    """The class order of a split stream for ``seed``: a permutation drawn from its own
    ``torch.Generator`` (Avalanche's generators reseed the global one instead)."""
    from ..data import make_generator

    return torch.randperm(num_classes, generator=make_generator(seed)).tolist()


def class_split_stream(train: ImageDataset, test: ImageDataset, n_experiences: int = 5, *,
                       class_order: Sequence[int] | None = None, seed: int = 0, train_transform=None):
    """One dataset split by classes into ``n_experiences`` experiences (class-incremental, task
    label 0), Avalanche's ``class_incremental_benchmark`` over tensor datasets.

    ``class_order``: the classes in order of arrival (a permutation of ``0..K-1``); ``None``:
    :func:`class_order_for_seed` (``seed``), so that every seed has its fixed order, as
    Avalanche's ``SplitCIFAR10(seed=...)``. Labels keep their original ids. ``train_transform``
    (on one normalised ``(C, H, W)`` tensor, e.g.
    :func:`~dc_plugins.avalanche.transforms.make_learner_transform`) augments the training
    items in train mode; test items and the eval view are as stored. Items are
    ``(Tensor, int, int)``; the order is in ``bm.class_order``.
    """
    from avalanche.benchmarks import class_incremental_benchmark, with_task_labels

    classes = sorted(int(c) for c in torch.unique(train.labels.cpu()))
    k = len(classes)
    if classes != list(range(k)):
        raise ValueError(f"a class split needs labels 0..K-1; the training set has {classes}")
    test_classes = sorted(int(c) for c in torch.unique(test.labels.cpu()))
    if test_classes != classes:
        raise ValueError(f"train and test sets have different classes ({classes} vs {test_classes})")
    if tuple(train.images.shape[1:]) != tuple(test.images.shape[1:]):
        raise ValueError(f"train and test images differ in shape: {tuple(train.images.shape[1:])} vs "
                         f"{tuple(test.images.shape[1:])}")
    if isinstance(n_experiences, bool) or not isinstance(n_experiences, int) or n_experiences < 1 or k % n_experiences:
        divisors = [d for d in range(1, k + 1) if k % d == 0]
        raise ValueError(f"n_experiences must divide the {k} classes; allowed: {', '.join(map(str, divisors))}, "
                         f"got {n_experiences!r}")
    order = class_order_for_seed(k, seed) if class_order is None else [int(c) for c in class_order]
    if sorted(order) != classes:
        raise ValueError(f"class_order must list each of the classes 0..{k - 1} once, got {list(class_order)}")
    bm = class_incremental_benchmark({"train": _avalanche_dataset(train.images, train.labels, transform=train_transform),
                                      "test": _avalanche_dataset(test.images, test.labels)},
                                     class_order=order, num_experiences=n_experiences)
    bm = _sorted_class_lists(with_task_labels(bm))
    bm.class_order = order
    return bm


def load_class_split_stream(dataset: str, root: str | os.PathLike | None = None, n_experiences: int = 5, *,
                            seed: int = 0, class_order: Sequence[int] | None = None, learner_augment: str = "none",
                            image_size: int | None = None, channels: int | None = None,
                            max_train_per_class: int | None = None, download: bool = False, **folder):
    """:func:`class_split_stream` of an engine dataset (``imagefolder`` for CIFAR-10-JPEG or your
    own folders, ``cifar10`` from torchvision, ...), loaded with :func:`~dc_plugins.data.load_dataset`
    (``folder``: its image-folder keywords, e.g. ``progress``, ``cache_dir``). ``max_train_per_class``
    keeps a fixed random subset of each training class (drawn with seed 0, the same for every
    run seed); test sets are complete."""
    from .transforms import make_learner_transform

    (train, test), = load_domains([dataset], root, download=download, image_size=image_size, channels=channels,
                                  max_train_per_class=max_train_per_class, **folder)
    return class_split_stream(train, test, n_experiences, class_order=class_order, seed=seed,
                              train_transform=make_learner_transform(learner_augment, train.image_size))
