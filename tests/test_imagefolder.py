"""Image-folder datasets on generated folders of tiny PNG and JPEG files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dc_plugins import imagefolder
from dc_plugins.data import DatasetNotFoundError, load_dataset
from dc_plugins.imagefolder import ImageFolderError

from .conftest import SHARED_DATA

CLASSES = ("cat", "dog", "frog")  # written in another order below: labels must follow sorted names


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels)
    img.save(path, quality=95) if path.suffix == ".jpg" else img.save(path)


def make_folder(root: Path, per_class=(3, 2), size=6, channels=3, seed=0) -> Path:
    """root/{train,test}/<class>/: PNG and JPEG files alternating, random pixels."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "test"), per_class):
        for c in reversed(CLASSES):
            for i in range(n):
                _write(root / split / c / f"{i:02d}.{'png' if i % 2 else 'jpg'}",
                       rng.integers(0, 256, (size, size, channels), dtype=np.uint8))
    return root


def decoded_pixels(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The split decoded directly with PIL: uint8 (N, C, H, W) and labels, in sorted order."""
    xs, ys = [], []
    for label, c in enumerate(sorted(CLASSES)):
        for f in sorted((folder / c).iterdir()):
            a = np.asarray(Image.open(f))
            a = a[..., None] if a.ndim == 2 else a
            xs.append(torch.from_numpy(a.copy()).permute(2, 0, 1))
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys)


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "data")


def test_classes_labels_shapes_and_training_statistics(folder):
    train = load_dataset("imagefolder", folder, True, progress=False)
    test = load_dataset("imagefolder", folder, False, progress=False)
    assert train.info.classes == ("cat", "dog", "frog") and train.num_classes == 3
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.images.shape == (9, 3, 6, 6) and test.images.shape == (6, 3, 6, 6)
    assert (train.info.name, train.info.channels, train.info.image_size, train.split) == ("imagefolder", 3, 6, "train")

    raw, labels = decoded_pixels(folder / "train")
    x = raw.double() / 255
    mean, std = x.mean(dim=(0, 2, 3)), x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    assert torch.allclose(torch.tensor(train.info.mean, dtype=torch.float64), mean, atol=1e-9)
    assert torch.allclose(torch.tensor(train.info.std, dtype=torch.float64), std, atol=1e-9)
    # the test split is normalised with the training statistics, and both carry them
    assert test.info.mean == train.info.mean and test.info.std == train.info.std
    raw_test, _ = decoded_pixels(folder / "test")
    want = (raw_test.float() / 255 - mean.float().view(1, 3, 1, 1)) / std.float().view(1, 3, 1, 1)
    assert torch.allclose(test.images, want, atol=1e-5)
    assert torch.equal(labels, train.labels)


def test_grey_folder_image_size_channels_and_flip(tmp_path):
    root = make_folder(tmp_path / "grey", size=8, channels=1)
    train = load_dataset("imagefolder", root, True, image_size=4, channels=3, flip=False, progress=False)
    assert train.info.channels == 1 and len(train.info.mean) == 1
    assert train.images.shape == (9, 3, 4, 4) and torch.equal(train.images[:, 0], train.images[:, 2])
    from dc_plugins.evaluation import evaluation_augment, flips_allowed

    assert not flips_allowed(train.info) and flips_allowed(load_dataset("imagefolder", root, progress=False).info)
    assert "flip" not in evaluation_augment("dsa", "dm", train.info)[1].families
    assert evaluation_augment("dc", "dc", train.info)[1].families == ("crop", "scale", "rotate")  # digit-like


def test_explicit_train_test_pair(tmp_path, folder):
    train_dir, test_dir = tmp_path / "mine" / "fit", tmp_path / "elsewhere" / "held_out"
    os.makedirs(train_dir.parent), os.makedirs(test_dir.parent)
    os.rename(folder / "train", train_dir), os.rename(folder / "test", test_dir)
    test = load_dataset("imagefolder", train=False, train_dir=train_dir, test_dir=test_dir, progress=False)
    assert test.images.shape == (6, 3, 6, 6) and test.info.files == (str(train_dir), str(test_dir))
    with pytest.raises(ValueError, match="give both train_dir and test_dir"):
        load_dataset("imagefolder", train_dir=train_dir, progress=False)


def test_second_load_reads_the_cache_and_a_changed_file_is_decoded_again(folder, monkeypatch):
    first = load_dataset("imagefolder", folder, True, progress=False)
    assert len(list((folder / ".dc_cache").glob("train-*.pt"))) == 1

    def must_not_decode(path):
        raise AssertionError(f"decoded {path} although the cache is valid")

    real = imagefolder.decode_image_file
    monkeypatch.setattr(imagefolder, "decode_image_file", must_not_decode)
    second = load_dataset("imagefolder", folder, True, progress=False)
    assert torch.equal(first.images, second.images) and second.info == first.info

    changed = folder / "train" / "dog" / "01.png"
    _write(changed, np.full((6, 6, 3), 255, dtype=np.uint8))
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime even on coarse clocks
    seen = []
    monkeypatch.setattr(imagefolder, "decode_image_file", lambda p: seen.append(p) or real(p))
    third = load_dataset("imagefolder", folder, True, progress=False)
    assert len(seen) == 9 and changed in seen
    assert (third.images[4] * torch.tensor(third.info.std).view(3, 1, 1)
            + torch.tensor(third.info.mean).view(3, 1, 1)).min() > 0.99  # the new, white image
    assert third.info.mean != first.info.mean
    assert len(list((folder / ".dc_cache").glob("train-*.pt"))) == 1  # the stale cache file is gone


def test_damaged_cache_is_rebuilt_with_a_warning(folder, monkeypatch):
    first = load_dataset("imagefolder", folder, True, progress=False)
    cache = next((folder / ".dc_cache").glob("train-*.pt"))
    cache.write_bytes(cache.read_bytes()[:200])  # truncated
    with pytest.warns(UserWarning, match="ignoring the cache file .*truncated"):
        again = load_dataset("imagefolder", folder, True, progress=False)
    assert torch.equal(first.images, again.images)
    # the rebuilt file is whole again, and one whose tensors were edited fails its checksum
    payload = torch.load(cache, weights_only=True)
    payload["images"][0, 0, 0, 0] ^= 1
    torch.save(payload, cache)
    with pytest.warns(UserWarning, match="fails its checksum"):
        load_dataset("imagefolder", folder, True, progress=False)


def test_read_only_root_falls_back_to_the_user_cache(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home_cache"))
    folder.chmod(0o555)  # no write bits: not written even when the tests run as root
    try:
        load_dataset("imagefolder", folder, True, progress=False)
    finally:
        folder.chmod(0o755)
    assert not (folder / ".dc_cache").exists()
    assert len(list((tmp_path / "home_cache" / "dc_plugins" / "imagefolder").glob("train-*.pt"))) == 1
    own = tmp_path / "own_cache"
    load_dataset("imagefolder", folder, True, cache_dir=own, progress=False)
    assert len(list(own.glob("train-*.pt"))) == 1


def test_mixed_sizes_need_image_size(folder):
    _write(folder / "train" / "dog" / "big.png", np.zeros((10, 8, 3), dtype=np.uint8))
    with pytest.raises(ImageFolderError, match=r"differ in size: cat/00\.jpg is 6x6 px, dog/big\.png is 8x10 px"):
        load_dataset("imagefolder", folder, True, progress=False)
    train = load_dataset("imagefolder", folder, True, image_size=5, progress=False)
    assert train.images.shape == (10, 3, 5, 5) and train.info.image_size == 5
    assert load_dataset("imagefolder", folder, False, image_size=5, progress=False).images.shape == (6, 3, 5, 5)


def test_missing_root_and_split_folders(tmp_path, folder):
    with pytest.raises(DatasetNotFoundError, match="root .*nowhere.* is not a folder"):
        load_dataset("imagefolder", tmp_path / "nowhere")
    (folder / "test").rename(folder / "val")
    with pytest.raises(DatasetNotFoundError, match=r"split folder .*test.* does not exist"):
        load_dataset("imagefolder", folder)
    with pytest.raises(ValueError, match="needs root"):
        load_dataset("imagefolder")


def test_empty_folders_and_class_folders_without_images(tmp_path):
    root = tmp_path / "empty"
    (root / "train").mkdir(parents=True), (root / "test").mkdir()
    with pytest.raises(ImageFolderError, match=r"train' has no class folders"):
        load_dataset("imagefolder", root)
    _write(root / "train" / "loose.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ImageFolderError, match=r"holds 1 image file\(s\) directly"):
        load_dataset("imagefolder", root)
    (root / "train" / "cat").mkdir()
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(ImageFolderError, match=r"class folder .*cat' has no images \(allowed extensions: \.jpg"):
        load_dataset("imagefolder", root)


def test_train_and_test_class_sets_must_match(folder):
    (folder / "test" / "frog").rename(folder / "test" / "toad")
    load_dataset("imagefolder", folder, True, progress=False)  # the training split alone is fine
    with pytest.raises(ImageFolderError, match=r"only in train: \['frog'\]; only in test: \['toad'\]"):
        load_dataset("imagefolder", folder, False, progress=False)


def test_corrupt_image_file_is_named(folder):
    bad = folder / "train" / "dog" / "00.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(ImageFolderError, match=r"cannot read image file .*dog/00\.jpg': [^/]*$"):
        load_dataset("imagefolder", folder, progress=False)
    bad.write_bytes(b"this is no image")
    bad.rename(bad.with_suffix(".bmp"))  # the PIL path
    with pytest.raises(ImageFolderError, match=r"cannot read image file .*dog/00\.bmp"):
        load_dataset("imagefolder", folder, progress=False)


def test_cli_config_takes_the_folder_pair(tmp_path, folder):
    from dc_plugins.cli import build_parser, config_from_args, load_data

    args = build_parser().parse_args(["--dataset", "imagefolder", "--train-dir", str(folder / "train"),
                                      "--test-dir", str(folder / "test"), "--method", "random",
                                      "--set", "flip=false", "--set", f"cache_dir={tmp_path / 'c'}"])
    cfg = config_from_args(args)
    assert cfg.image_size is None and cfg.flip is False  # the paper preset keeps a folder's own size
    train, test = load_data(cfg, progress=False)
    assert train.info.flip is False and len(test) == 6 and any((tmp_path / "c").iterdir())
    with pytest.raises(ValueError, match="train_dir/test_dir apply to dataset 'imagefolder' only"):
        config_from_args(build_parser().parse_args(["--dataset", "mnist", "--train-dir", "a", "--test-dir", "b"]))


def test_cifar10_jpeg_test_split_from_shared_data():
    root = SHARED_DATA / "cifar10-jpeg"
    if not (root / "test").is_dir():
        pytest.skip(f"CIFAR-10-JPEG not found at {root}")
    classes, files = imagefolder.list_images(root / "test")
    assert classes[0] == "airplane" and classes[-1] == "truck" and len(files) == 10_000
    start = time.perf_counter()
    split = imagefolder.read_split(root / "test", cache=False, progress=False)
    assert split.images.shape == (10_000, 3, 32, 32) and split.images.dtype == torch.uint8
    assert split.labels.bincount().tolist() == [1000] * 10
    mean, _ = imagefolder.channel_stats(split.images)
    assert all(abs(m - ref) < 0.01 for m, ref in zip(mean, (0.4913, 0.4821, 0.4465)))
    assert time.perf_counter() - start < 30


def test_saved_set_records_the_folder_statistics(tmp_path):
    from dc_plugins.condense import condense
    from dc_plugins.synthetic import SyntheticSet

    train = load_dataset("imagefolder", make_folder(tmp_path / "data", size=8), True, progress=False)
    syn = condense(train, "random", ipc=2, progress=False)
    loaded = SyntheticSet.load(syn.save(tmp_path / "set.pt"))
    assert loaded.dataset == "imagefolder" and loaded.mean == train.info.mean and loaded.std == train.info.std
    assert loaded.images.shape == (6, 3, 8, 8)
