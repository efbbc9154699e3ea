import pytest
import torch

from dc_plugins.config import EvalConfig
from dc_plugins.evaluation import EvalResult, evaluate_set, evaluation_augment
from dc_plugins.models import ConvNetSpec
from dc_plugins.synthetic import SyntheticSet


def real_subset(ds, ipc):
    idx = torch.cat([torch.nonzero(ds.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(ds.images[idx], ds.labels[idx], "random", "digits", ipc)


def test_networks_trained_on_a_small_real_set_beat_chance(digits_train, digits_test):
    res = evaluate_set(real_subset(digits_train, 5), digits_test,
                       config=EvalConfig(networks=2, epochs=60, net="convnet-w32-d2"), progress=False)
    assert len(res.accuracies) == 2 and res.epochs == 60 and res.augment == "dc"
    assert res.mean > 0.6  # chance is 0.1


def test_without_augmentation_networks_fit_their_training_set(digits_train, digits_test):
    # (DC's augmentation shifts up to 4 px: on 8-px digits the set is not fitted exactly, so the
    # fitting check runs without it.)
    res = evaluate_set(real_subset(digits_train, 5), digits_test,
                       config=EvalConfig(networks=2, epochs=150, net="convnet-w32-d2", augment="none"), progress=False)
    assert res.augment == "none" and res.mean > 0.6
    assert all(a >= 0.98 for a in res.train_accuracies), res.train_accuracies


def test_same_seed_same_result(digits_train, digits_test):
    cfg = EvalConfig(networks=1, epochs=5, net="convnet-w8-d1")
    a = evaluate_set(real_subset(digits_train, 2), digits_test, config=cfg, seed=3, progress=False)
    b = evaluate_set(real_subset(digits_train, 2), digits_test, config=cfg, seed=3, progress=False)
    assert a.accuracies == b.accuracies


def test_protocol_defaults_and_augmentation_choice():
    cfg = EvalConfig()
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch) == (0.01, 0.9, 5e-4, 256)
    spec = ConvNetSpec()
    assert evaluation_augment("auto", "dm", "cifar10", spec)[0] == "dsa"
    assert evaluation_augment("auto", "dc", "mnist", spec)[0] == "dc"
    assert evaluation_augment("auto", "dc", "cifar10", spec)[0] == "none"
    assert evaluation_augment("auto", "random", "cifar10", ConvNetSpec(norm="batch"))[0] == "dc"
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        evaluation_augment("mixup", "dc", "mnist", spec)


def test_mean_and_std():
    r = EvalResult([0.5, 0.7], 10, "none", "convnet")
    assert r.mean == pytest.approx(0.6) and r.std == pytest.approx(0.1)
    assert "60.0 ± 10.0 %" in str(r)


def test_set_for_another_shape_is_refused(digits_train, digits_test):
    syn = SyntheticSet(torch.zeros(10, 3, 32, 32), torch.arange(10), "dc", "cifar10", 1)
    with pytest.raises(ValueError, match=r"3 channel\(s\) at 32x32 px; the model expects 1 channel\(s\) at 8x8"):
        evaluate_set(syn, digits_test, config=EvalConfig(networks=1, epochs=1), progress=False)
