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
    # scikit-learn digits are not MNIST: the DC code's rule trains them without augmentation.
    assert len(res.accuracies) == 2 and res.epochs == 60 and res.augment == "none"
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


@pytest.mark.parametrize("method, dataset, norm, kind, families", [
    # The DC code's get_daparam: crop/scale/rotate only for MNIST, crop + noise for ConvNetBN ...
    ("dc", "mnist", "instance", "dc", ("crop", "scale", "rotate")),
    ("random", "mnist", "instance", "dc", ("crop", "scale", "rotate")),
    ("dc", "usps", "batch", "dc", ("crop", "noise")),
    ("herding", "cifar10", "batch", "dc", ("crop", "noise")),
    # ... and nothing for every other dataset, digits included (DSA's no-flip list is another thing).
    ("dc", "usps", "instance", "none", None),
    ("random", "digits", "instance", "none", None),
    ("dc", "svhn", "instance", "none", None),
    ("dc", "cifar10", "instance", "none", None),
    # Sets learned with DSA are evaluated with DSA, without flips for digits.
    ("dm", "usps", "instance", "dsa", ("color", "crop", "cutout", "scale", "rotate")),
    ("dsa", "cifar10", "batch", "dsa", ("color", "crop", "cutout", "flip", "scale", "rotate")),
])
def test_auto_augmentation_follows_the_dc_code(method, dataset, norm, kind, families):
    got_kind, augment = evaluation_augment("auto", method, dataset, ConvNetSpec(norm=norm))
    assert got_kind == kind
    assert (augment.families if augment is not None else None) == families


def test_augmentation_without_a_network_is_the_same_for_every_norm():
    # spec=None (NAS: one augmentation for every architecture) never takes the BatchNorm variant.
    assert evaluation_augment("dc", "random", "usps", None)[1].families == ("crop", "scale", "rotate")
    assert evaluation_augment("auto", "random", "usps", None)[0] == "none"
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        evaluation_augment("mixup", "dc", "mnist", ConvNetSpec())


def test_mean_and_std():
    r = EvalResult([0.5, 0.7], 10, "none", "convnet")
    assert r.mean == pytest.approx(0.6) and r.std == pytest.approx(0.1)
    assert "60.0 ± 10.0 %" in str(r)


def test_set_for_another_shape_is_refused(digits_train, digits_test):
    syn = SyntheticSet(torch.zeros(10, 3, 32, 32), torch.arange(10), "dc", "cifar10", 1)
    with pytest.raises(ValueError, match=r"3 channel\(s\) at 32x32 px; the model expects 1 channel\(s\) at 8x8"):
        evaluate_set(syn, digits_test, config=EvalConfig(networks=1, epochs=1), progress=False)


def test_protocol_schedule_momentum_and_weight_decay_are_the_ones_used(digits_train, digits_test, monkeypatch):
    # Spy on the optimiser each training epoch actually gets: SGD with the protocol's momentum and
    # weight decay, lr 0.01 for the first half of the epochs and 0.001 after.
    import dc_plugins.evaluation as evaluation

    seen = []
    real_epoch = evaluation.train_epoch
    def spy(net, images, labels, optimizer, **kwargs):
        group = optimizer.param_groups[0]
        seen.append((type(optimizer).__name__, group["lr"], group["momentum"], group["weight_decay"], kwargs["batch"]))
        return real_epoch(net, images, labels, optimizer, **kwargs)
    monkeypatch.setattr(evaluation, "train_epoch", spy)
    evaluate_set(real_subset(digits_train, 2), digits_test, config=EvalConfig(networks=1, epochs=6, net="convnet-w4-d1"),
                 progress=False)
    assert [s[0] for s in seen] == ["SGD"] * 6 and {s[2:] for s in seen} == {(0.9, 5e-4, 256)}
    assert [s[1] for s in seen] == pytest.approx([0.01] * 3 + [0.001] * 3)


def test_weight_decay_shrinks_the_weights(digits_train):
    # The decay term acts: the same training with weight decay ends with smaller weights.
    from dc_plugins.data import make_generator
    from dc_plugins.evaluation import train_on_set
    from dc_plugins.models import make_convnet

    syn = real_subset(digits_train, 2)
    norms = []
    for wd in (0.0, 0.5):
        spec = ConvNetSpec.parse("convnet-w4-d1").with_data(1, 10, 8)
        net = make_convnet(spec, generator=make_generator(0))
        train_on_set(net, syn.images, syn.labels, epochs=20, config=EvalConfig(lr=0.1, weight_decay=wd),
                     generator=make_generator(0))
        norms.append(sum(float(p.detach().norm() ** 2) for p in net.parameters()))
    assert norms[1] < 0.9 * norms[0], norms


def test_sets_with_a_learned_step_size_are_evaluated_with_it(digits_train, digits_test):
    # MTT/SelMatch learn the students' step size; the MTT code trains the evaluation networks with
    # it (args.lr_net = syn_lr), so the protocol does too unless eval.learned_lr is off.
    from dc_plugins.config import EvalConfig
    from dc_plugins.evaluation import evaluate_set
    from dc_plugins.synthetic import SyntheticSet

    def mtt_set(syn_lr):
        images = digits_train.images[:20].clone()
        labels = digits_train.labels[:20].clone()
        return SyntheticSet(images, labels, "mtt", "digits", 2, 0, {"net": "convnet-w16-d2", "syn_lr": syn_lr},
                            digits_train.info.mean, digits_train.info.std)

    cfg = EvalConfig(networks=1, epochs=3, augment="none")
    learned = evaluate_set(mtt_set(0.037), digits_test, config=cfg, progress=False)
    fixed = evaluate_set(mtt_set(0.037), digits_test, config=EvalConfig(networks=1, epochs=3, augment="none",
                                                                         learned_lr=False), progress=False)
    assert learned.lr == pytest.approx(0.037) and fixed.lr == pytest.approx(0.01)
    assert learned.train_accuracies != fixed.train_accuracies or learned.accuracies != fixed.accuracies
    with pytest.raises(ValueError, match="syn_lr=-0.5 is not a positive number"):
        evaluate_set(mtt_set(-0.5), digits_test, config=cfg, progress=False)


def test_a_set_learned_in_zca_space_is_trained_and_tested_there(digits_train, digits_test):
    from dataclasses import replace

    from dc_plugins.zca import ZCA

    zca = ZCA.fit(digits_train.images, 0.1)
    syn = SyntheticSet(digits_train.images[:30].clone(), digits_train.labels[:30].clone(), "mtt", "digits", 3, 0,
                       {"net": "convnet-w16-d2"}, digits_train.info.mean, digits_train.info.std)
    cfg = EvalConfig(networks=2, epochs=4, augment="none")
    whitened = evaluate_set(syn, digits_test, config=cfg, zca=zca, progress=False)
    by_hand = evaluate_set(syn.replace_images(zca.transform(syn.images)),
                           replace(digits_test, images=zca.transform(digits_test.images)), config=cfg, progress=False)
    plain = evaluate_set(syn, digits_test, config=cfg, progress=False)
    assert whitened.accuracies == by_hand.accuracies
    assert whitened.train_accuracies != plain.train_accuracies or whitened.accuracies != plain.accuracies
