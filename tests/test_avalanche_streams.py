"""Digit streams: SVHN -> MNIST -> USPS shapes (generated tensors), flavours, offline streams."""

from __future__ import annotations

import pytest
import torch

from tests.avalanche_util import blob_domain, one_thread  # noqa: F401
from tests.conftest import shared_data_or_skip

from dc_plugins.avalanche import streams  # noqa: E402
from dc_plugins.data import DatasetNotFoundError  # noqa: E402


def paper_shaped_domains(image_size=32, channels=3):
    """Generated stand-ins with SVHN's, MNIST's and USPS's native shapes (SVHN is not offline)."""
    native = [blob_domain(6, 10, channels=3, size=32, seed=1, name="svhn"),
              blob_domain(6, 10, channels=1, size=28, seed=2, name="mnist"),
              blob_domain(6, 10, channels=1, size=16, seed=3, name="usps")]
    return [(streams.harmonise(d, image_size, channels), streams.harmonise(d, image_size, channels)) for d in native]


def test_harmonise_brings_every_domain_to_one_shape():
    for train, test in paper_shaped_domains(32, 3):
        assert train.images.shape[1:] == test.images.shape[1:] == (3, 32, 32)
    for train, _ in paper_shaped_domains(28, 1):
        assert train.images.shape[1:] == (1, 28, 28)


def test_unharmonised_domains_are_refused():
    native = [(blob_domain(2, 10, channels=3, size=32),) * 2, (blob_domain(2, 10, channels=1, size=28),) * 2]
    with pytest.raises(ValueError, match="different image shapes"):
        streams.stream_from_domains(native, "class")


def test_class_incremental_has_30_classes_without_task_labels():
    bm = streams.stream_from_domains(paper_shaped_domains(), "class")
    assert len(bm.train_stream) == len(bm.test_stream) == 3
    assert [sorted(e.classes_in_this_experience) for e in bm.train_stream] == [
        list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
    for exp in bm.train_stream:
        x, y, t = exp.dataset[0]
        assert x.shape == (3, 32, 32) and isinstance(y, int) and t == 0
        assert set(exp.dataset.targets_task_labels) == {0}


def test_task_incremental_restarts_labels_and_sets_task_ids():
    bm = streams.stream_from_domains(paper_shaped_domains(), "task")
    for i, exp in enumerate(bm.train_stream):
        assert sorted(exp.classes_in_this_experience) == list(range(10))
        assert exp.task_label == i and set(exp.dataset.targets_task_labels) == {i}


def test_domain_incremental_shares_the_ten_digit_labels():
    bm = streams.stream_from_domains(paper_shaped_domains(), "domain")
    for exp in bm.train_stream:
        assert sorted(set(exp.dataset.targets)) == list(range(10))
        assert set(exp.dataset.targets_task_labels) == {0}
        assert isinstance(exp.dataset[0][1], int)


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario 'online'; allowed: class, task, domain"):
        streams.stream_from_domains(paper_shaped_domains(), "online")


def test_svhn_stream_without_files_names_what_is_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"svhn: files not found .*train_32x32.mat.*download=True"):
        streams.digit_stream(tmp_path, download=False)


def test_sklearn_digits_stream_always_works():
    bm = streams.sklearn_digits_stream(5)
    assert [sorted(e.classes_in_this_experience) for e in bm.train_stream] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert sum(len(e.dataset) for e in bm.train_stream) == 1437
    assert sum(len(e.dataset) for e in bm.test_stream) == 360
    assert bm.train_stream[0].dataset[0][0].shape == (1, 8, 8)
    task = streams.sklearn_digits_stream(2, scenario="task", image_size=16)
    assert [sorted(e.classes_in_this_experience) for e in task.train_stream] == [list(range(5))] * 2
    assert task.train_stream[1].dataset[0][0].shape == (1, 16, 16)
    with pytest.raises(ValueError, match="single domain"):
        streams.sklearn_digits_stream(5, scenario="domain")
    with pytest.raises(ValueError, match="1, 2, 5 or 10, got 3"):
        streams.sklearn_digits_stream(3)


def test_offline_stream_reads_mnist10k_usps_and_digits():
    root = shared_data_or_skip()
    bm = streams.offline_digit_stream(root, image_size=16, max_train_per_class=5)
    assert [len(e.dataset) for e in bm.train_stream] == [50, 50, 50]
    assert [len(e.dataset) for e in bm.test_stream] == [2000, 2007, 360]
    assert bm.train_stream[1].dataset[0][0].shape == (1, 16, 16)
    assert sorted(bm.train_stream[2].classes_in_this_experience) == list(range(20, 30))
    x = torch.stack([bm.train_stream[0].dataset[i][0] for i in range(50)])
    assert abs(float(x.mean())) < 1.0  # normalised, not raw [0, 255]


@pytest.mark.parametrize("build", [
    lambda: streams.stream_from_domains(paper_shaped_domains(8, 1), "class"),
    lambda: streams.stream_from_domains(paper_shaped_domains(8, 1), "task"),
    lambda: streams.stream_from_domains(paper_shaped_domains(8, 1), "domain"),
    lambda: streams.sklearn_digits_stream(5),
    lambda: streams.sklearn_digits_stream(2, scenario="task"),
], ids=["class", "task", "domain", "digits-class", "digits-task"])
def test_streams_use_avalanches_current_generators(build):
    """No deprecated generator (nc_benchmark, dataset_benchmark) and no private helper: building
    a stream emits no deprecation warning, and experiences carry the classes timeline and task
    labels of Avalanche 0.6's decorators."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        bm = build()
    seen: set = set()
    for i, exp in enumerate(bm.train_stream):
        assert exp.current_experience == i
        assert set(exp.classes_in_this_experience) == set(exp.dataset.targets.uniques)
        assert set(exp.previous_classes) == seen
        seen |= set(exp.classes_in_this_experience)
        assert exp.task_labels == sorted(exp.dataset.targets_task_labels.uniques)
    source = open(streams.__file__).read()
    assert "nc_benchmark" not in source and "dataset_benchmark" not in source and "import _" not in source


def test_streams_keep_lists_of_classes_and_n_classes():
    """What the deprecated generators gave and Avalanche's MultiHeadClassifier relies on."""
    bm = streams.stream_from_domains(paper_shaped_domains(8, 1), "class")
    assert bm.n_classes == 30 and bm.train_stream[1].classes_in_this_experience == list(range(10, 20))
    assert streams.sklearn_digits_stream(5).n_classes == 10
