"""Small streams and learners shared by the tests of the Avalanche side (test_avalanche_*.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

warnings.filterwarnings("ignore", message=".*QP solver.*")

from dc_plugins.data import DatasetInfo, ImageDataset  # noqa: E402

TINY_NET = "convnet-w8-d2-instance-relu-avg"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the test machines have 2 busy cores, where torch's thread pool
    oversubscribes and runs these tiny networks ~10x slower. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blob_domain(n_per_class: int, classes: int = 3, *, channels: int = 1, size: int = 8, seed: int = 0,
                name: str = "blobs") -> ImageDataset:
    """Generated images: each class a fixed random pattern plus noise (easy to learn, easy to forget)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(classes, channels, size, size, generator=g)
    x = protos.repeat_interleave(n_per_class, 0) + 0.5 * torch.randn(classes * n_per_class, channels, size, size,
                                                                     generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return ImageDataset(x, y, DatasetInfo(name, channels, size, classes, (0.0,) * channels, (1.0,) * channels))


def blob_stream(scenario: str = "class", *, experiences: int = 3, classes: int = 2, n_train: int = 30,
                n_test: int = 20, seed: int = 0):
    """A stream of ``experiences`` generated domains (different patterns per domain)."""
    from dc_plugins.avalanche.streams import stream_from_domains

    domains = []
    for e in range(experiences):
        # train and test share the class patterns (same seed), with different noise draws
        full = blob_domain(n_train + n_test, classes, seed=seed * 100 + e)
        idx = torch.arange(full.images.shape[0])
        is_test = (idx % (n_train + n_test)) >= n_train
        domains.append((full.subset(idx[~is_test]), full.subset(idx[is_test])))
    return stream_from_domains(domains, scenario)


def tiny_learner(num_classes: int, seed: int = 0, size: int = 8):
    from dc_plugins.models import make_convnet

    return make_convnet(TINY_NET, channels=1, image_size=size, num_classes=num_classes,
                        generator=torch.Generator().manual_seed(seed))


def quiet_evaluator():
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[])


def exp_accuracy(metrics: dict, j: int) -> float:
    hits = [v for k, v in metrics.items()
            if k.startswith("Top1_Acc_Exp/eval_phase/test_stream/") and k.endswith(f"/Exp{j:03d}")]
    assert len(hits) == 1, metrics.keys()
    return float(hits[0])


def tensor_dataset(images: torch.Tensor, labels: torch.Tensor, task: int = 0):
    """An Avalanche dataset of tensors with items (Tensor, int, int), from the public API only."""
    from avalanche.benchmarks.utils import DataAttribute, TaskAwareSupervisedClassificationDataset, TaskLabels

    from dc_plugins.avalanche.items import MemoryItems

    targets = [int(v) for v in labels]
    return TaskAwareSupervisedClassificationDataset(
        [MemoryItems(images, targets, None)],
        data_attributes=[DataAttribute(targets, "targets"), TaskLabels([int(task)] * len(targets))])
