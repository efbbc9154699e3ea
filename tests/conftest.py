"""Shared fixtures: small real data (scikit-learn digits) and generated tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dc_plugins.data import DatasetInfo, ImageDataset, load_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def digits_train() -> ImageDataset:
    return load_dataset("digits", train=True)  # 8x8, 1,437 images


@pytest.fixture(scope="session")
def digits_test() -> ImageDataset:
    return load_dataset("digits", train=False)


def make_blobs(n_per_class: int = 20, classes: int = 3, channels: int = 1, size: int = 8,
               seed: int = 0) -> ImageDataset:
    """Generated images: each class a different mean pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(classes, channels, size, size, generator=g)
    x = protos.repeat_interleave(n_per_class, 0) + 0.3 * torch.randn(classes * n_per_class, channels, size, size, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    info = DatasetInfo("blobs", channels, size, classes, (0.0,) * channels, (1.0,) * channels)
    return ImageDataset(x, y, info)


@pytest.fixture
def blobs() -> ImageDataset:
    return make_blobs()


def shared_data_or_skip() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests' networks are tiny: one thread avoids OpenMP overhead on small machines."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
