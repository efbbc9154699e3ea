"""Labelled image datasets as normalised tensors, and a per-class index over them.

Condensation methods touch the real data thousands of times (a batch of class ``c`` per step),
so datasets are materialised once as one float tensor on the target device instead of going
through a ``DataLoader``. Loading goes through torchvision's own dataset classes, so a ``root``
laid out for torchvision works unchanged; ``imagefolder`` reads any folder of image files in
``torchvision.datasets.ImageFolder`` layout (:mod:`dc_plugins.imagefolder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DATASETS",
    "FOLDER_DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "ClassIndex",
    "subsample_per_class",
    "DatasetNotFoundError",
    "load_dataset",
    "dataset_info",
]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not under ``root`` and downloading is off (or failed)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: native shape and the normalisation used everywhere."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    files: tuple[str, ...] = ()  # what must exist under root (for error messages)
    classes: tuple[str, ...] = ()  # class names by label, where the data has them (image folders)
    # whether mirroring keeps an image's class (DSA's flip, DC's families); None: by name, i.e.
    # not for the digit datasets (evaluation.DIGIT_DATASETS), yes for every other
    flip: bool | None = None


# Normalisation constants are the ones the DC/DSA/DM papers' code uses, so that published
# learning rates for synthetic images (which live in normalised space) carry over.
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,),
                         ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte")),
    "fashion_mnist": DatasetInfo("fashion_mnist", 1, 28, 10, (0.2861,), (0.3530,),
                                 ("FashionMNIST/raw/train-images-idx3-ubyte",)),
    "usps": DatasetInfo("usps", 1, 16, 10, (0.2469,), (0.2989,), ("usps.bz2", "usps.t.bz2")),
    "svhn": DatasetInfo("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                        ("train_32x32.mat", "test_32x32.mat")),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                           ("cifar-10-batches-py",)),
    # scikit-learn's bundled 8x8 digits: ships with the dependencies, always available offline.
    "digits": DatasetInfo("digits", 1, 8, 10, (0.3051,), (0.3757,), ()),
}

# Datasets whose facts (classes, channels, size, normalisation) come from the files at load time,
# not from DATASETS: dataset_info() has no entry for them.
FOLDER_DATASETS = ("imagefolder",)


def is_folder_dataset(name: str) -> bool:
    return name.lower().replace("-", "_").replace("_", "") in FOLDER_DATASETS


def dataset_info(name: str) -> DatasetInfo:
    key = name.lower().replace("-", "_")
    if is_folder_dataset(name):
        raise ValueError(f"dataset {name!r} takes its classes, size and normalisation from the files: "
                         f"its DatasetInfo is built by load_dataset")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: "
                         f"{', '.join(sorted(DATASETS) + list(FOLDER_DATASETS))}")
    return DATASETS[key]


@dataclass
class ImageDataset:
    """Images ``(N, C, H, W)`` normalised with ``info.mean/std`` and integer labels ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    split: str = "train"

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels shape {tuple(self.labels.shape)} does not match {self.images.shape[0]} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def to(self, device: torch.device | str) -> "ImageDataset":
        return ImageDataset(self.images.to(device), self.labels.to(device), self.info, self.split)

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageDataset":
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return ImageDataset(self.images[idx], self.labels[idx], self.info, self.split)


def _to_float_images(data) -> torch.Tensor:
    """uint8 HxW / HxWxC / CxHxW arrays or tensors -> float (N, C, H, W) in [0, 1]."""
    x = torch.as_tensor(np.asarray(data))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = x.float()
    if x.max() > 1.5:
        x = x / 255.0
    return x


def _load_torchvision(name: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    if name == "mnist":
        ds = tvd.MNIST(root, train=train, download=download)
        return _to_float_images(ds.data), ds.targets.clone().long()
    if name == "fashion_mnist":
        ds = tvd.FashionMNIST(root, train=train, download=download)
        return _to_float_images(ds.data), ds.targets.clone().long()
    if name == "cifar10":
        ds = tvd.CIFAR10(root, train=train, download=download)
        return _to_float_images(ds.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(ds.targets)
    if name == "svhn":
        ds = tvd.SVHN(root, split="train" if train else "test", download=download)
        # torchvision's SVHN stores (N, C, H, W) uint8 and calls its labels `labels`.
        return _to_float_images(ds.data), torch.as_tensor(ds.labels).long()
    if name == "usps":
        ds = tvd.USPS(root, train=train, download=download)
        # USPS is stored as uint8 HxW after torchvision's own rescaling from [-1, 1].
        return _to_float_images(ds.data), torch.as_tensor(ds.targets).long()
    raise AssertionError(name)


def _load_digits(train: bool, test_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, stratify=bunch.target, random_state=seed)
    idx = torch.as_tensor(idx_train if train else idx_test)
    return x[idx], y[idx]


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    train: bool = True,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = False,
    device: torch.device | str = "cpu",
    flip: bool | None = None,
    **folder,
) -> ImageDataset:
    """Load a classification dataset as one normalised tensor.

    Args:
        name: one of :data:`DATASETS` (``mnist``, ``fashion_mnist``, ``usps``, ``svhn``,
            ``cifar10``, ``digits``), or ``imagefolder``: ``root/{train,test}/<class>/<image>``
            (or ``train_dir=``, ``test_dir=``), with classes, channels, size and normalisation
            from the files (see :func:`dc_plugins.imagefolder.load_imagefolder` for its other
            keywords: ``cache_dir``, ``cache``, ``progress``).
        root: torchvision-style root folder (ignored for ``digits``).
        train: training split if True, else the test split.
        image_size: resize (bilinear) to this square size; ``None`` keeps the native size.
            The paper pads 28x28 digits to 32x32 for the default ConvNet: asking for 32 from a
            28-pixel dataset zero-pads (2 px each side) instead of resizing.
        channels: convert to this many channels (1 <-> 3); ``None`` keeps the native count.
        download: let torchvision download missing files (needs internet; not for image folders).
        device: where the tensors live.
        flip: whether mirroring keeps an image's class (``DatasetInfo.flip``); ``None`` keeps the
            dataset's rule (digits: no, everything else: yes). Mark digit-like image folders
            with ``flip=False``.
    """
    if is_folder_dataset(name):
        from .imagefolder import load_imagefolder

        return load_imagefolder(root, train, image_size=image_size, channels=channels, flip=flip,
                                device=device, **folder)
    if folder:
        raise TypeError(f"load_dataset({name!r}): unexpected keyword(s) {', '.join(sorted(folder))} "
                        f"(they apply to image folders only)")
    info = dataset_info(name)
    if flip is not None:
        info = replace(info, flip=flip)
    if info.name == "digits":
        x, y = _load_digits(train)
    else:
        if root is None:
            raise ValueError(f"dataset {name!r} needs a root folder (root=None given)")
        root = Path(root).expanduser()
        try:
            x, y = _load_torchvision(info.name, root, train, download)
        except (RuntimeError, FileNotFoundError) as err:  # torchvision's words for missing/corrupt files
            wanted = ", ".join(info.files) or "(torchvision layout)"
            raise DatasetNotFoundError(
                f"{info.name}: files not found under root {str(root)!r} (expected {wanted}); "
                f"pass download=True when online, or point root at a folder holding them. "
                f"torchvision said: {err}") from err

    x = _normalise(x, info)
    x = convert_images(x, image_size=image_size, channels=channels)
    return ImageDataset(x.to(device), y.to(device), info, "train" if train else "test")


def _normalise(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (x - mean) / std


def convert_images(x: torch.Tensor, *, image_size: int | None = None, channels: int | None = None) -> torch.Tensor:
    """Resize/pad to ``image_size`` and convert between 1 and 3 channels (normalised space)."""
    if channels is not None and channels != x.shape[1]:
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        elif x.shape[1] == 3 and channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}; allowed: 1 <-> 3")
    if image_size is not None and image_size != x.shape[-1]:
        size = x.shape[-1]
        if image_size == 32 and size == 28:
            # Zero in normalised space would be a grey border; pad with the image's background
            # (its minimum), which is what padding the raw 0-valued border gives.
            x = F.pad(x, (2, 2, 2, 2), value=float(x.min()))
        else:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                              antialias=image_size < size)
    return x


class ClassIndex:
    """Per-class view of a dataset: draws ``n`` real images of class ``c`` quickly.

    Images stay on ``device``; indices per class are computed once. All sampling takes an
    explicit ``torch.Generator`` so that runs are reproducible without touching the global RNG.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None):
        self.images = images
        self.labels = labels
        n_cls = int(labels.max().item()) + 1 if num_classes is None else num_classes
        self.classes = list(range(n_cls))
        self._indices = [torch.nonzero(labels == c, as_tuple=False).flatten() for c in self.classes]
        # the same on the CPU, where the (CPU) generator draws: a draw is then indexed on the CPU and
        # copied to the device once for all classes (:meth:`draw_indices`, :meth:`gather`)
        self._cpu_indices = [i.cpu() for i in self._indices]

    @classmethod
    def from_dataset(cls, dataset: ImageDataset) -> "ClassIndex":
        return cls(dataset.images, dataset.labels, dataset.num_classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def count(self, c: int) -> int:
        return int(self._indices[c].numel())

    def indices(self, c: int) -> torch.Tensor:
        return self._indices[c]

    def images_of(self, c: int) -> torch.Tensor:
        return self.images[self._indices[c]]

    def sample(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` distinct images of class ``c`` (all of them, shuffled, if the class has fewer)."""
        return self.gather([self.draw_indices(c, n, generator)])[0]

    def draw_indices(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """The dataset indices (on the CPU) of the images :meth:`sample` would return: the same
        draw from ``generator``. Draw every class first, then :meth:`gather` them in one go."""
        idx = self._cpu_indices[c]
        if idx.numel() == 0:
            raise ValueError(f"class {c} has no images")
        return idx[torch.randperm(idx.numel(), generator=generator)[:n]]

    def gather(self, drawn: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The images of several :meth:`draw_indices` draws: one copy of the indices to the
        device (one host sync) and one indexing, instead of one of each per class."""
        if not drawn:
            return []
        images = self.images[torch.cat(list(drawn)).to(self.images.device)]
        return list(images.split([d.numel() for d in drawn]))

    def sample_indices(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = self._cpu_indices[c]
        return idx[torch.randperm(idx.numel(), generator=generator)[:n]].to(self.images.device)


def subsample_per_class(data: ImageDataset, per_class: int, generator: torch.Generator) -> ImageDataset:
    """At most ``per_class`` random images of each class (all of a smaller class), in the
    dataset's order; the draw depends only on ``generator``."""
    if per_class <= 0:
        raise ValueError(f"images per class must be positive, got {per_class}")
    keep = []
    for c in sorted(set(data.labels.tolist())):
        idx = torch.nonzero(data.labels == c).flatten()
        keep.append(idx[torch.randperm(idx.numel(), generator=generator)[:per_class].to(idx.device)])
    return data.subset(torch.sort(torch.cat(keep)).values)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator for all sampling decisions (indices, augmentation parameters, init)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
