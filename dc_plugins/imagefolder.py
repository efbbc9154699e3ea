"""Datasets from folders of image files: ``root/{train,test}/<class>/<image>``.

The layout is ``torchvision.datasets.ImageFolder``'s, one folder per split (or any
``train_dir``/``test_dir`` pair). What a registered dataset takes from its registry entry comes
from the files here:

* classes: the split's sub-folders in sorted order (label 0 = first name); the test split must
  have the same class folders. Hidden entries (names starting with ``.``) are skipped, files
  whose extension is not an image format (``IMAGE_EXTENSIONS``) are ignored.
* channels: 1 when every image is grey, else 3 (grey images are repeated into RGB); alpha is
  dropped.
* size: the images' own size when all of them share it; folders of mixed sizes need
  ``image_size`` (each image is resized to ``image_size x image_size`` at decode time).
* normalisation: per-channel mean and std over every pixel of the *training* split (in [0, 1]),
  used for the test split too and carried in the :class:`~dc_plugins.data.DatasetInfo`, hence in
  every :class:`~dc_plugins.synthetic.SyntheticSet` made from it.
* ``flip``: whether mirroring keeps an image's class (DSA's flip family, DC's digit families).
  ``None`` (default) = yes, as for natural images; pass ``flip=False`` for digit-like data.

Decoding is ``torchvision.io.decode_image`` (JPEG, PNG, WebP: about twice as fast as PIL on
32x32 JPEGs here) with PIL for the other formats. The decoded ``uint8`` tensors are cached in one
file per split, keyed on the file list, sizes and modification times, so that a second load does
not decode again: in ``cache_dir`` when given, else ``<split folder's parent>/.dc_cache`` (that is
``root/.dc_cache``), or ``$XDG_CACHE_HOME/dc_plugins/imagefolder`` (``~/.cache/...``) when that
folder is read-only (no write permission, or no write bits at all: a ``chmod a-w`` data folder is
not written even by root). A cache file is written atomically, read with ``weights_only=True`` and
checked against a SHA-256 of its tensors; a damaged one is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .io import atomic_path, load_torch_file

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderError",
    "FolderImages",
    "split_dirs",
    "list_images",
    "decode_image_file",
    "read_split",
    "channel_stats",
    "load_imagefolder",
]

# torchvision.datasets.folder.IMG_EXTENSIONS, the formats ImageFolder reads
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_TORCHVISION_FORMATS = (".jpg", ".jpeg", ".png", ".webp")  # torchvision.io decodes these; PIL the rest

CACHE_FORMAT = "dc-plugins/imagefolder-cache"
CACHE_VERSION = 1


class ImageFolderError(ValueError):
    """An image folder that cannot be read as a dataset (names the folder or file and why)."""


@dataclass
class FolderImages:
    """One split as decoded: ``uint8`` images ``(N, C, H, W)``, labels ``(N,)``, class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    folder: Path
    cache: Path | None = None      # the cache file read or written (None: not cached)
    from_cache: bool = False


# -- layout -----------------------------------------------------------------------------------

def split_dirs(root: str | os.PathLike | None = None, *, train_dir: str | os.PathLike | None = None,
               test_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The ``(train, test)`` folders: ``train_dir``/``test_dir`` when given (both), else
    ``root/train`` and ``root/test``; a missing one is a ``DatasetNotFoundError``."""
    from .data import DatasetNotFoundError

    if (train_dir is None) != (test_dir is None):
        raise ValueError(f"imagefolder: give both train_dir and test_dir, or neither (got train_dir={train_dir!r}, "
                         f"test_dir={test_dir!r})")
    if train_dir is not None:
        dirs = Path(train_dir).expanduser(), Path(test_dir).expanduser()
    else:
        if root is None:
            raise ValueError("imagefolder needs root (holding train/ and test/) or a train_dir/test_dir pair")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(f"imagefolder: root {str(root)!r} is not a folder (expected "
                                       f"{str(root / 'train')!r} and {str(root / 'test')!r} with one folder per class)")
        dirs = root / "train", root / "test"
    for d in dirs:
        if not d.is_dir():
            raise DatasetNotFoundError(f"imagefolder: split folder {str(d)!r} does not exist (expected one "
                                       f"folder per class inside it, images in those)")
    return dirs


def _visible(name: str) -> bool:
    return not name.startswith(".")


def list_images(folder: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """``(classes, [(file, label), ...])``: class folders in sorted order, the image files of each
    (searched recursively, in sorted order). No class folder, or a class folder without images,
    is an :class:`ImageFolderError`."""
    folder = Path(folder)
    classes = tuple(sorted(e.name for e in os.scandir(folder) if e.is_dir() and _visible(e.name)))
    if not classes:
        loose = sum(1 for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        hint = f" (it holds {loose} image file(s) directly: put them in one folder per class)" if loose else ""
        raise ImageFolderError(f"imagefolder: {str(folder)!r} has no class folders{hint}; "
                               f"expected {folder}/<class>/<image>")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(folder / name, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if _visible(d))
            found += [Path(dirpath) / f for f in sorted(filenames)
                      if _visible(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            raise ImageFolderError(f"imagefolder: class folder {str(folder / name)!r} has no images "
                                   f"(allowed extensions: {', '.join(IMAGE_EXTENSIONS)})")
        files += [(f, label) for f in found]
    return classes, files


# -- decoding ---------------------------------------------------------------------------------

def decode_image_file(path: Path) -> torch.Tensor:
    """One image file as ``uint8`` ``(C, H, W)`` with C = 1 (grey) or 3 (RGB), alpha dropped;
    an unreadable file is an :class:`ImageFolderError` naming it."""
    path = Path(path)
    try:
        if path.suffix.lower() in _TORCHVISION_FORMATS:
            from torchvision.io import ImageReadMode, decode_image, read_file

            x = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
        else:
            import numpy as np
            from PIL import Image

            with Image.open(path) as im:
                grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                a = np.asarray(im.convert("L" if grey else "RGB"))
            x = torch.from_numpy(a.copy()).reshape(a.shape[0], a.shape[1], -1).permute(2, 0, 1)
    except Exception as err:  # noqa: BLE001  torchvision: RuntimeError; PIL: UnidentifiedImageError, OSError, ...
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if ".cpp:" in why:  # torchvision: "decode_jpeg, /path/decode_jpeg.cpp:171, Image is incomplete ..."
            why = why.rsplit(", ", 1)[-1]
        raise ImageFolderError(f"imagefolder: cannot read image file {str(path)!r}: {why}") from None
    if x.ndim == 4:  # an animated image: its first frame
        x = x[0]
    channels = x.shape[0]
    return x[:1] if channels in (1, 2) else x[:3]


def _resize(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 ``(C, H, W)`` or ``(N, C, H, W)`` -> ``size x size``, bilinear (antialiased when
    shrinking), as :func:`~dc_plugins.data.convert_images` resizes."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    if x.ndim == 3:
        return _resize(x[None], size)[0]
    out = []
    for start in range(0, x.shape[0], chunk):
        y = F.interpolate(x[start:start + chunk].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=min(x.shape[-2:]) > size)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def _decode_all(folder: Path, files: Sequence[tuple[Path, int]], image_size: int | None,
                progress: bool) -> tuple[torch.Tensor, bool]:
    """``(images uint8 (N, C, H, W), resized)``: every file decoded; ``resized`` when the sizes
    were mixed and each image was brought to ``image_size``."""
    from tqdm.auto import tqdm

    decoded: list[torch.Tensor] = []
    first: tuple[Path, tuple[int, int]] | None = None
    mixed = False
    for path, _ in tqdm(files, desc=f"decode {folder.name}", unit="img", disable=not progress,
                        mininterval=1.0):
        x = decode_image_file(path)
        hw = tuple(x.shape[-2:])
        if first is None:
            first = (path, hw)
        elif hw != first[1] and not mixed:
            if image_size is None:
                raise ImageFolderError(
                    f"imagefolder: images in {str(folder)!r} differ in size: {_rel(first[0], folder)} is "
                    f"{first[1][1]}x{first[1][0]} px, {_rel(path, folder)} is {hw[1]}x{hw[0]} px (width x height); "
                    f"pass image_size to resize every image to one square size")
            mixed = True
        decoded.append(x)
    if mixed:
        decoded = [_resize(x, image_size) for x in decoded]
    if any(x.shape[0] == 3 for x in decoded):
        decoded = [x.expand(3, -1, -1) if x.shape[0] == 1 else x for x in decoded]
    return torch.stack(decoded).contiguous(), mixed


def _rel(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


# -- the tensor cache -------------------------------------------------------------------------

def _file_key(classes: Sequence[str], files: Sequence[tuple[Path, int]], folder: Path,
              image_size: int | None) -> str:
    """SHA-256 over the class names and every file's relative path, label, size and mtime (and
    ``image_size`` for a cache of resized images)."""
    h = hashlib.sha256(json.dumps([CACHE_FORMAT, CACHE_VERSION, list(classes), image_size]).encode())
    for path, label in files:
        st = path.stat()
        h.update(f"{_rel(path, folder)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "dc_plugins" / "imagefolder"


def _cache_dirs(folder: Path, cache_dir: str | os.PathLike | None) -> list[Path]:
    if cache_dir is not None:
        return [Path(cache_dir).expanduser()]
    return [folder.parent / ".dc_cache", _user_cache_dir()]


def _writable(directory: Path) -> bool:
    """Whether files can be made in ``directory`` (or in its nearest existing ancestor, where it
    would be created). A folder without any write bit counts as read-only even for root."""
    d = directory
    while not d.exists():
        if d.parent == d:
            return False
        d = d.parent
    if not d.is_dir():
        return False
    mode = d.stat().st_mode
    return os.access(d, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _cache_name(folder: Path, key: str) -> tuple[str, str]:
    """``(prefix, file name)``; the prefix (split name + hash of its absolute path) is shared by
    every cache file of this folder, so that stale ones can be removed."""
    where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    prefix = f"{folder.name}-{where}"
    return prefix, f"{prefix}-{key[:24]}.pt"


def _checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(f"{tuple(images.shape)}{images.dtype};{tuple(labels.shape)}{labels.dtype};".encode())
    h.update(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()


class _UnusableCache(ValueError):
    pass


def _read_cache(path: Path, key: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    payload = load_torch_file(path, "image-folder cache", _UnusableCache)
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise _UnusableCache(f"{path} is not an image-folder cache file: no {CACHE_FORMAT!r} format tag")
    if payload.get("version") != CACHE_VERSION or payload.get("key") != key:
        raise _UnusableCache(f"{path} is of another version or file list")
    images, labels = payload.get("images"), payload.get("labels")
    if (not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor) or images.dtype != torch.uint8
            or images.ndim != 4 or labels.shape != (n,) or images.shape[0] != n):
        raise _UnusableCache(f"{path} holds tensors of the wrong shape or type")
    if _checksum(images, labels) != payload.get("sha256"):
        raise _UnusableCache(f"{path} fails its checksum (damaged or modified)")
    return images, labels


def _write_cache(dirs: Sequence[Path], folder: Path, key: str, images: torch.Tensor,
                 labels: torch.Tensor) -> Path | None:
    payload = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "folder": str(folder),
               "images": images, "labels": labels, "sha256": _checksum(images, labels)}
    prefix, name = _cache_name(folder, key)
    for d in dirs:
        if not _writable(d):
            continue
        path = d / name
        try:
            with atomic_path(path) as tmp:
                torch.save(payload, tmp)
                os.chmod(tmp, 0o644)  # readable like the images themselves (mkstemp makes 0600)
        except OSError:
            continue
        for stale in d.glob(f"{prefix}-*.pt"):  # earlier versions of this folder's files
            if stale != path:
                stale.unlink(missing_ok=True)
        return path
    warnings.warn(f"imagefolder: no writable cache folder among {', '.join(map(str, dirs))}; "
                  f"the images of {str(folder)!r} will be decoded again next time", stacklevel=3)
    return None


def read_split(folder: str | os.PathLike, *, image_size: int | None = None,
               cache_dir: str | os.PathLike | None = None, cache: bool = True,
               progress: bool = True) -> FolderImages:
    """Decode one split folder (or read it from the tensor cache)."""
    folder = Path(folder)
    classes, files = list_images(folder)
    labels = torch.tensor([label for _, label in files], dtype=torch.long)
    dirs = _cache_dirs(folder, cache_dir)
    keys = [_file_key(classes, files, folder, None)]
    if image_size is not None:
        keys.append(_file_key(classes, files, folder, image_size))  # a mixed-size folder, resized
    if cache:
        for key in keys:
            for d in dirs:
                path = d / _cache_name(folder, key)[1]
                if not path.is_file():
                    continue
                try:
                    images, stored = _read_cache(path, key, len(files))
                except _UnusableCache as err:
                    warnings.warn(f"imagefolder: ignoring the cache file ({err}); decoding the images again",
                                  stacklevel=2)
                    continue
                if torch.equal(stored, labels):
                    return FolderImages(images, labels, classes, folder, path, True)
    images, resized = _decode_all(folder, files, image_size, progress)
    written = _write_cache(dirs, folder, keys[1 if resized else 0], images, labels) if cache else None
    return FolderImages(images, labels, classes, folder, written, False)


# -- statistics and the dataset ---------------------------------------------------------------

def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of ``uint8`` images over every pixel, in [0, 1]:
    exact, from each channel's histogram of the 256 values (std 1 for a constant channel)."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    mean, std = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        m = (counts * values).sum() / n
        var = (counts * (values - m).square()).sum() / n
        mean.append(float(m))
        std.append(float(var.sqrt()) or 1.0)  # a constant channel: centred, not scaled
    return tuple(mean), tuple(std)


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    return x.float().mean(dim=1, keepdim=True).round().to(torch.uint8)


def load_imagefolder(root: str | os.PathLike | None = None, train: bool = True, *,
                     train_dir: str | os.PathLike | None = None, test_dir: str | os.PathLike | None = None,
                     image_size: int | None = None, channels: int | None = None, flip: bool | None = None,
                     cache_dir: str | os.PathLike | None = None, cache: bool = True, progress: bool = True,
                     device: torch.device | str = "cpu"):
    """One split of an image folder as a normalised :class:`~dc_plugins.data.ImageDataset`.

    Usually reached as ``load_dataset("imagefolder", root, train, ...)``. The training split is
    read for the statistics and classes even when ``train=False`` (from the cache after the
    first time). ``image_size`` resizes (required for folders of mixed sizes), ``channels``
    converts 1 <-> 3 after normalisation, as for every dataset.
    """
    from .data import DatasetInfo, ImageDataset, convert_images

    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    train_folder, test_folder = split_dirs(root, train_dir=train_dir, test_dir=test_dir)
    kw = dict(image_size=image_size, cache_dir=cache_dir, cache=cache, progress=progress)
    tr = read_split(train_folder, **kw)
    mean, std = channel_stats(tr.images)
    data = tr
    if not train:
        te_classes, _ = list_images(test_folder)
        if te_classes != tr.classes:
            only_train = sorted(set(tr.classes) - set(te_classes))
            only_test = sorted(set(te_classes) - set(tr.classes))
            raise ImageFolderError(
                f"imagefolder: class folders of {str(test_folder)!r} differ from {str(train_folder)!r} "
                f"(only in train: {only_train or 'none'}; only in test: {only_test or 'none'})")
        data = read_split(test_folder, **kw)
        if data.images.shape[-2:] != tr.images.shape[-2:] and image_size is None:
            h, w = tr.images.shape[-2:]
            h2, w2 = data.images.shape[-2:]
            raise ImageFolderError(f"imagefolder: training images are {w}x{h} px, test images {w2}x{h2} px; "
                                   f"pass image_size to resize both")
    h, w = tr.images.shape[-2:]
    if h != w and image_size is None:
        raise ImageFolderError(f"imagefolder: the images of {str(train_folder)!r} are {w}x{h} px, not square; "
                               f"pass image_size to resize them to a square size")
    info = DatasetInfo("imagefolder", tr.images.shape[1], int(w) if h == w else image_size, len(tr.classes),
                       mean, std, (str(train_folder), str(test_folder)), classes=tr.classes, flip=flip)
    images = _match_channels(data.images, info.channels)
    if images.shape[-2] != images.shape[-1]:
        images = _resize(images, image_size)
    x = images.to(device).float()  # (x / 255 - mean) / std, in place: one float copy of the split
    x.sub_(torch.tensor(mean, device=x.device).view(1, -1, 1, 1) * 255).div_(
        torch.tensor(std, device=x.device).view(1, -1, 1, 1) * 255)
    x = convert_images(x, image_size=image_size, channels=channels)
    return ImageDataset(x, data.labels.to(device), info, "train" if train else "test")
