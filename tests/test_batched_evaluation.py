"""Batched evaluation (dc_plugins.stacked): K networks trained as one stacked model are the K
networks the loop trains, and evaluate_set gives the same accuracies whatever ``parallel`` is."""

import dataclasses
import statistics

import pytest
import torch

from dc_plugins.config import EvalConfig, RunConfig, resolve
from dc_plugins.evaluation import (
    evaluate_set,
    evaluation_augment,
    network_generators,
    parallel_networks,
    train_on_set,
)
from dc_plugins.matching.base import NonFiniteLossError
from dc_plugins.models import ConvNetSpec, make_convnet
from dc_plugins.stacked import StackedNets, train_stacked, train_stacked_steps
from dc_plugins.synthetic import SyntheticSet


def real_subset(ds, ipc):
    idx = torch.cat([torch.nonzero(ds.labels == c).flatten()[:ipc] for c in range(10)])
    return SyntheticSet(ds.images[idx], ds.labels[idx], "random", "digits", ipc)


def train_both(spec, syn, kind, *, k, epochs, seed=0, batch=16):
    """Networks 0..k-1 of ``seed`` trained one by one and stacked; returns both lists."""
    _, augment = evaluation_augment(kind, "random", "digits", spec)
    cfg = EvalConfig(batch=batch)
    gens = network_generators(seed, k)
    loop = [make_convnet(spec, generator=g) for g in gens]
    for net, g in zip(loop, gens):
        train_on_set(net, syn.images, syn.labels, epochs=epochs, config=cfg, generator=g, augment=augment)
    gens = network_generators(seed, k)
    stacked = [make_convnet(spec, generator=g) for g in gens]
    out = train_stacked(stacked, syn.images, syn.labels, epochs=epochs, generators=gens, lr=cfg.lr,
                        momentum=cfg.momentum, weight_decay=cfg.weight_decay, batch=cfg.batch, augment=augment)
    assert out == stacked
    return loop, stacked


def max_state_difference(a, b):
    diffs = []
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        if x.is_floating_point():
            diffs.append(float((x - y).abs().max()))
        else:
            assert torch.equal(x, y), name  # BatchNorm's num_batches_tracked
    return max(diffs)


@pytest.mark.parametrize("kind", ["none", "dc", "dsa"])
def test_one_stacked_network_is_the_loops_network(digits_train, digits_test, kind):
    # 30 images in minibatches of 16: two steps an epoch, the last one short, lr decay at epoch 6.
    spec = ConvNetSpec.parse("convnet-w8-d2").with_data(1, 10, 8)
    syn = real_subset(digits_train, 3)
    (loop,), (stacked,) = train_both(spec, syn, kind, k=1, epochs=12)
    assert max_state_difference(loop, stacked) < 1e-5
    from dc_plugins.training import accuracy
    assert accuracy(loop, digits_test.images, digits_test.labels) == accuracy(stacked, digits_test.images,
                                                                              digits_test.labels)
    # and training moved the weights (the comparison is not between two untrained networks)
    untrained = make_convnet(spec, generator=network_generators(0, 1)[0])
    assert max_state_difference(untrained, loop) > 1e-2


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_each_stacked_network_is_its_loop_network(digits_train, norm):
    # Own initialisation, data order and augmentation draws per network; BatchNorm's running
    # statistics are stacked buffers updated per network.
    spec = ConvNetSpec.parse(f"convnet-w8-d1-{norm}").with_data(1, 10, 8)
    loop, stacked = train_both(spec, real_subset(digits_train, 3), "dc", k=3, epochs=8)
    assert all(max_state_difference(a, b) < 1e-5 for a, b in zip(loop, stacked))
    assert max_state_difference(stacked[0], stacked[1]) > 1e-2  # different networks


def test_batched_and_loop_accuracies_have_the_same_distribution(digits_train, digits_test):
    syn = real_subset(digits_train, 5)
    cfg = EvalConfig(networks=8, epochs=40, net="convnet-w16-d2", augment="none", parallel=1)
    loop = evaluate_set(syn, digits_test, config=cfg, seed=1, progress=False)
    batched = evaluate_set(syn, digits_test, config=dataclasses.replace(cfg, parallel=8), seed=1, progress=False)
    spread = statistics.pstdev(loop.accuracies)
    assert spread > 0 and abs(loop.mean - batched.mean) <= spread
    assert loop.mean > 0.5  # trained: chance is 0.1
    # network by network the same, up to float rounding (at most a few of 360 test images)
    assert max(abs(a - b) for a, b in zip(loop.accuracies, batched.accuracies)) <= 3 / len(digits_test)


def test_chunks_give_the_result_of_one_chunk(digits_train, digits_test):
    syn = real_subset(digits_train, 2)
    cfg = EvalConfig(networks=5, epochs=10, net="convnet-w8-d1", augment="dsa", parallel=5)
    one = evaluate_set(syn, digits_test, config=cfg, seed=2, progress=False)
    chunks = evaluate_set(syn, digits_test, config=dataclasses.replace(cfg, parallel=2), seed=2, progress=False)
    assert len(chunks.accuracies) == 5
    assert chunks.accuracies == pytest.approx(one.accuracies, abs=1.5 / len(digits_test))
    assert chunks.train_accuracies == pytest.approx(one.train_accuracies, abs=1.5 / 20)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "4"])
def test_parallel_must_be_a_positive_integer(digits_train, digits_test, bad):
    with pytest.raises(ValueError, match=r"eval.parallel must be a positive integer"):
        evaluate_set(real_subset(digits_train, 1), digits_test, config=EvalConfig(networks=2, epochs=1, parallel=bad),
                     progress=False)
    with pytest.raises(ValueError, match=r"eval.parallel must be a positive integer"):
        resolve(RunConfig(eval=EvalConfig(parallel=bad)))


def test_parallel_default_is_the_loop_on_a_cpu():
    assert parallel_networks(EvalConfig(), "cpu") == 1
    assert parallel_networks(EvalConfig(parallel=4), "cpu") == 4


def test_network_generators_are_independent_of_the_count():
    a = [torch.rand(3, generator=g) for g in network_generators(7, 4)]
    b = [torch.rand(3, generator=g) for g in network_generators(7, 2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert network_generators(7, 0) == []
    assert not torch.equal(a[0], a[1])
    # network 0 is make_generator(seed): a one-network evaluation is what it was before
    from dc_plugins.data import make_generator
    assert torch.equal(a[0], torch.rand(3, generator=make_generator(7)))
    # no network of seed 7 is network 0 of seed 8 (seed + k would be)
    c = torch.rand(3, generator=network_generators(8, 1)[0])
    assert not any(torch.equal(c, x) for x in a)


def test_stacking_refuses_mixed_architectures_and_a_missing_generator():
    nets = [make_convnet("convnet-w8-d1", channels=1, num_classes=10, image_size=8),
            make_convnet("convnet-w4-d1", channels=1, num_classes=10, image_size=8)]
    with pytest.raises(ValueError, match="one architecture"):
        StackedNets(nets)
    with pytest.raises(ValueError, match="2 networks need 2 generators, got 1"):
        train_stacked(nets, torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), epochs=1,
                      generators=network_generators(0, 1), lr=0.01, momentum=0.9, weight_decay=0.0, batch=4)


def test_a_diverging_network_is_named(digits_train):
    spec = ConvNetSpec.parse("convnet-w8-d1-none").with_data(1, 10, 8)
    gens = network_generators(0, 2)
    nets = [make_convnet(spec, generator=g) for g in gens]
    syn = real_subset(digits_train, 2)
    with pytest.raises(NonFiniteLossError, match=r"training loss of network \d became"):
        train_stacked(nets, syn.images * 1e30, syn.labels, epochs=3, generators=gens, lr=1e6, momentum=0.9,
                      weight_decay=0.0, batch=20)


def test_parallel_is_not_part_of_a_runs_fingerprint(digits_train, digits_test):
    # Like the device it changes the networks only by float rounding: a finished result stays reusable.
    from dc_plugins.cli import run_fingerprint

    a = run_fingerprint(resolve(RunConfig(dataset="digits")), digits_train, digits_test)
    b = run_fingerprint(resolve(RunConfig(dataset="digits", eval=EvalConfig(parallel=4))), digits_train, digits_test)
    assert a == b and "parallel" not in a["eval"]


def test_an_augmentation_per_image_of_the_set_gets_its_indices_when_stacked(digits_train):
    # SelMatch's evaluation augmentation (DSA on the distilled images, crop + flip on the selected)
    # needs the minibatch's indices into the set, as train_epoch passes them.
    from dc_plugins.augment import CombinedAugment, CropFlip, DSAugment

    spec = ConvNetSpec.parse("convnet-w8-d1").with_data(1, 10, 8)
    syn = real_subset(digits_train, 3)
    augment = CombinedAugment(torch.arange(30) % 2 == 0, DSAugment(flip=False), CropFlip(flip=False))
    cfg = EvalConfig(batch=16)
    gens = network_generators(0, 2)
    loop = [make_convnet(spec, generator=g) for g in gens]
    for net, g in zip(loop, gens):
        train_on_set(net, syn.images, syn.labels, epochs=4, config=cfg, generator=g, augment=augment)
    gens = network_generators(0, 2)
    stacked = train_stacked([make_convnet(spec, generator=g) for g in gens], syn.images, syn.labels, epochs=4,
                            generators=gens, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                            batch=cfg.batch, augment=augment)
    assert all(max_state_difference(a, b) < 1e-5 for a, b in zip(loop, stacked))


def test_a_step_budget_with_the_epochs_decay_is_train_stacked(digits_train):
    # 30 images in minibatches of 16: two steps an epoch; 6 epochs = 12 steps, lr x0.1 from step 6.
    spec = ConvNetSpec.parse("convnet-w8-d1").with_data(1, 10, 8)
    syn = real_subset(digits_train, 3)
    _, augment = evaluation_augment("dsa", "random", "digits", spec)
    kw = dict(lr=0.01, momentum=0.9, weight_decay=5e-4, batch=16, augment=augment)
    gens = network_generators(0, 2)
    by_epochs = train_stacked([make_convnet(spec, generator=g) for g in gens], syn.images, syn.labels, epochs=6,
                              generators=gens, **kw)
    gens, passes = network_generators(0, 2), []
    by_steps = train_stacked_steps([make_convnet(spec, generator=g) for g in gens], syn.images, syn.labels, steps=12,
                                   generators=gens, decay_at=6, on_pass=lambda p, done, s: passes.append((p, done)),
                                   **kw)
    assert all(max_state_difference(a, b) == 0 for a, b in zip(by_epochs, by_steps))
    assert passes == [(p, 2 * p) for p in range(1, 7)]
    # a budget that ends within a pass: 5 steps are two passes and one minibatch of a third
    gens, passes = network_generators(0, 2), []
    train_stacked_steps([make_convnet(spec, generator=g) for g in gens], syn.images, syn.labels, steps=5,
                        generators=gens, on_pass=lambda p, done, s: passes.append((p, done)), **kw)
    assert passes == [(1, 2), (2, 4), (3, 5)]
