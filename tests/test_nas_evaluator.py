"""The trial function under NNI's own mock runtime, and its training budgets."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("nni")

import nas.space  # noqa: E402,F401  (imports NNI without its torch-version warnings)
from nni.nas.space import SimplifiedModelSpace  # noqa: E402


from nas.config import TrainConfig  # noqa: E402
from nas.evaluator import evaluate_architecture, make_evaluator, read_record, record_path, train_architecture  # noqa: E402
from nas.proxy import early_stopping_steps  # noqa: E402
from nas.space import make_space, parse_arch  # noqa: E402
from tests.nas_util import ARCHS, provider, split  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore:.*is found to be not a nn.Module")

TRAIN = TrainConfig(epochs=4, whole_epochs=1, report_every=2, batch=64)


def test_evaluator_reports_final_result_under_mock_runtime(split, provider, tmp_path):
    proxy = provider.get("random")
    evaluator = make_evaluator(proxy, TRAIN, records=tmp_path, device="cpu")
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    frozen = SimplifiedModelSpace.from_model(space, evaluator).freeze(parse_arch(ARCHS[0]))
    with evaluator.mock_runtime(frozen):
        evaluator.evaluate(frozen.executable_model())
    assert isinstance(frozen.metrics.final, float) and 0.0 <= frozen.metrics.final <= 1.0
    assert len(frozen.metrics.intermediates) == 1          # epoch 2 of 4; epoch 4 is the final
    rec = read_record(record_path(tmp_path, ARCHS[0]))
    assert rec.status == "finished" and rec.accuracy == frozen.metrics.final
    assert rec.steps == 4 and rec.images_seen == 4 * 30     # 30 images, batch 64: one step per epoch


def test_trial_trains_with_the_configured_threads_and_restores_them(split, provider):
    import torch

    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    evaluator = make_evaluator(provider.get("random"), TRAIN, device="cpu", threads=wanted)
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    frozen = SimplifiedModelSpace.from_model(space, evaluator).freeze(parse_arch(ARCHS[0]))
    model = frozen.executable_model()
    seen = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    with evaluator.mock_runtime(frozen):
        evaluator.evaluate(model)
    assert seen and set(seen) == {wanted}
    assert torch.get_num_threads() == before


def test_evaluator_arguments_are_small_and_picklable(provider):
    import pickle

    evaluator = make_evaluator(provider.get("random"), TRAIN, records="/tmp/x", device="cpu")
    for value in evaluator.arguments.values():
        assert len(pickle.dumps(value)) < 64 * 1024


def test_same_seed_same_accuracy_on_every_run(split, provider):
    proxy = provider.get("random")
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    a = train_architecture(space.freeze(parse_arch(ARCHS[1])), proxy, TRAIN)
    b = train_architecture(space.freeze(parse_arch(ARCHS[1])), proxy, TRAIN)
    assert a.accuracy == b.accuracy


def test_every_architecture_of_a_run_trains_with_the_same_augmentation(split, provider, monkeypatch):
    # DC augmentation on digits: crop/scale/rotate for the instance-norm and the BatchNorm
    # architecture alike (the evaluation's BatchNorm rule would give the second crop + noise).
    import nas.evaluator as evaluator

    seen = {}
    real_epoch = evaluator.train_epoch
    for arch in ARCHS:
        def spy(*args, augment=None, _arch=arch, **kwargs):
            seen.setdefault(_arch, repr(augment))
            return real_epoch(*args, augment=augment, **kwargs)
        monkeypatch.setattr(evaluator, "train_epoch", spy)
        space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
        train_architecture(space.freeze(parse_arch(arch)), provider.get("random"),
                           dataclasses.replace(TRAIN, augment="dc"))
    assert seen == {arch: "DCAugment('crop_scale_rotate')" for arch in ARCHS}


def test_reporting_more_often_does_not_change_the_training(split, provider):
    # The trial-record key leaves report_every out, so validating mid-training must not touch
    # the network's training: same final accuracy, only the curve differs.
    proxy = provider.get("random")
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    sparse = train_architecture(space.freeze(parse_arch(ARCHS[1])), proxy, dataclasses.replace(TRAIN, report_every=10))
    dense = train_architecture(space.freeze(parse_arch(ARCHS[1])), proxy, dataclasses.replace(TRAIN, report_every=1))
    assert dense.accuracy == sparse.accuracy
    assert [epoch for epoch, _ in dense.intermediate] == [1, 2, 3] and sparse.intermediate == []


def test_repeats_average_runs_with_consecutive_seeds(split, provider):
    proxy = provider.get("random")
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    build = lambda: space.freeze(parse_arch(ARCHS[1]))  # noqa: E731
    seed0 = train_architecture(build(), proxy, TRAIN)
    seed1 = train_architecture(build(), proxy, dataclasses.replace(TRAIN, seed=1))
    both = train_architecture(build(), proxy, dataclasses.replace(TRAIN, repeats=2))
    assert both.accuracies == [seed0.accuracy, seed1.accuracy]
    assert both.accuracy == pytest.approx((seed0.accuracy + seed1.accuracy) / 2)
    assert both.steps == 2 * seed0.steps and both.images_seen == 2 * seed0.images_seen
    assert both.intermediate == seed0.intermediate              # one curve: the first repeat's


def test_interrupted_repeats_resume_with_the_missing_seeds_only(split, provider, tmp_path, monkeypatch):
    import nas.evaluator as evaluator_module

    proxy = provider.get("random")
    train = dataclasses.replace(TRAIN, repeats=3)
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    fresh = train_architecture(space.freeze(parse_arch(ARCHS[1])), proxy, train)

    real_train_once, seeds = evaluator_module._train_once, []

    def train_once(net, proxy, train, **kwargs):
        seeds.append(train.seed)
        if train.seed == 2 and len(seeds) == 3:
            raise KeyboardInterrupt  # the machine goes away during the third training
        return real_train_once(net, proxy, train, **kwargs)

    monkeypatch.setattr(evaluator_module, "_train_once", train_once)
    evaluator = make_evaluator(proxy, train, records=tmp_path, device="cpu")
    frozen = SimplifiedModelSpace.from_model(make_space(split.channels, split.num_classes, split.image_size, ARCHS),
                                             evaluator).freeze(parse_arch(ARCHS[1]))
    with pytest.raises(KeyboardInterrupt), evaluator.mock_runtime(frozen):
        evaluator.evaluate(frozen.executable_model())
    partial = read_record(record_path(tmp_path, ARCHS[1]))
    assert partial.status == "partial" and partial.accuracies == fresh.accuracies[:2]

    with evaluator.mock_runtime(frozen):
        evaluator.evaluate(frozen.executable_model())
    assert seeds == [0, 1, 2, 2]                                  # the rerun trains seed 2 only
    done = read_record(record_path(tmp_path, ARCHS[1]))
    assert done.status == "finished" and done.accuracies == fresh.accuracies
    assert done.accuracy == pytest.approx(fresh.accuracy) and frozen.metrics.final == done.accuracy
    assert done.steps == fresh.steps and done.intermediate == fresh.intermediate
    with pytest.raises(ValueError, match="has 3 trainings, more than train.repeats=2"):
        train_architecture(space.freeze(parse_arch(ARCHS[1])), proxy, dataclasses.replace(train, repeats=2),
                           done=done)


def test_whole_and_early_stopping_budgets(split, provider):
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    whole = train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("whole"), TRAIN)
    per_epoch = -(-len(split.train) // TRAIN.batch)
    assert whole.steps == TRAIN.whole_epochs * per_epoch and whole.images_seen == len(split.train)
    es = train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("early-stopping"), TRAIN)
    steps = early_stopping_steps(TRAIN.epochs, 3, 10, TRAIN.batch)
    assert es.steps == steps and es.images_seen == steps * TRAIN.batch  # the proxy's compute, on real data
    assert es.images_seen <= 4 * 30 + TRAIN.batch


def test_failing_trial_writes_a_failed_record_and_raises(split, provider, tmp_path):
    proxy = provider.get("random")
    space = make_space(split.channels, split.num_classes, split.image_size, ARCHS)
    bad = dict(vars(TRAIN), lr=float("nan"))   # non-finite loss on the first step
    with pytest.raises(FloatingPointError):
        evaluate_architecture(space.freeze(parse_arch(ARCHS[0])), proxy=proxy.path, train=bad,
                              records=str(tmp_path), device="cpu")
    rec = json.loads(record_path(tmp_path, ARCHS[0]).read_text())
    assert rec["status"] == "failed" and "NonFiniteLossError" in rec["error"]


def test_network_for_another_shape_is_rejected(provider):
    space = make_space(1, 10, 16, ARCHS)   # 16 px networks, 8 px data
    with pytest.raises(ValueError, match="expects 1x16x16 images.*data has 1x8x8"):
        train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("random"), TRAIN)
