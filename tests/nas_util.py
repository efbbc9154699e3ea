"""The digits split, proxy provider and two-architecture space shared by the NAS trial tests
(test_nas_evaluator.py, test_nas_stacked.py). Import after ``pytest.importorskip("nni")``."""

from __future__ import annotations

import pytest

from nas.config import DataConfig, ProxyConfig
from nas.data import load_split
from nas.proxy import ProxyProvider
from nas.space import make_space

DATA = DataConfig(dataset="digits", val_fraction=0.2)
ARCHS = ["w8-d1-instance-relu-avg", "w8-d2-batch-leakyrelu-max"]


@pytest.fixture(scope="module")
def split():
    return load_split(DATA)


@pytest.fixture(scope="module")
def provider(split, tmp_path_factory):
    return ProxyProvider(split, ProxyConfig(ipc=3, preset="cpu-quick"), tmp_path_factory.mktemp("cache"),
                         progress=False)


@pytest.fixture(scope="module")
def space(split):
    return make_space(split.channels, split.num_classes, split.image_size, ARCHS)
