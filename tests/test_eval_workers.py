"""Evaluation networks trained in worker processes are the networks of one process."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dc_plugins.config import EvalConfig, RunConfig, resolve
from dc_plugins.evaluation import evaluate_set
from dc_plugins.synthetic import SyntheticSet


def real_subset(ds, ipc):
    idx = torch.cat([torch.nonzero(ds.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(ds.images[idx], ds.labels[idx], "random", "digits", ipc)


@pytest.mark.parametrize("parallel", [1, 2])
def test_workers_train_the_networks_of_one_process(digits_train, digits_test, parallel):
    syn = real_subset(digits_train, 2)
    cfg = EvalConfig(networks=3, epochs=15, net="convnet-w8-d1", augment="dsa", parallel=parallel)
    alone = evaluate_set(syn, digits_test, config=cfg, seed=4, progress=False)
    workers = evaluate_set(syn, digits_test, config=dataclasses.replace(cfg, workers=2), seed=4, progress=False)
    assert len(workers.accuracies) == 3 and workers.train_seconds > 0
    # network by network (in order), up to the rounding of one thread instead of two
    assert workers.accuracies == pytest.approx(alone.accuracies, abs=1.5 / len(digits_test))
    assert workers.train_accuracies == pytest.approx(alone.train_accuracies, abs=1.5 / 20)
    assert len(set(alone.accuracies)) > 1  # three different networks, not one three times


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(digits_train, digits_test, bad):
    with pytest.raises(ValueError, match=r"eval.workers must be a positive integer .*got"):
        evaluate_set(real_subset(digits_train, 1), digits_test, config=EvalConfig(networks=2, epochs=1, workers=bad),
                     progress=False)
    with pytest.raises(ValueError, match=r"eval.workers must be a positive integer"):
        resolve(RunConfig(eval=EvalConfig(workers=bad)))


def test_workers_are_not_part_of_a_runs_fingerprint(digits_train, digits_test):
    from dc_plugins.cli import run_fingerprint

    a = run_fingerprint(resolve(RunConfig(dataset="digits")), digits_train, digits_test)
    b = run_fingerprint(resolve(RunConfig(dataset="digits", eval=EvalConfig(workers=2))), digits_train, digits_test)
    assert a == b and "workers" not in a["eval"]
