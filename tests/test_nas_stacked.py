"""NAS trials whose repeats train as one stacked model (``train.parallel``): repeat i is the network
the loop trains for seed ``train.seed + i`` (up to float rounding), with the loop's budget, curve,
record totals and partial-record resume; ``parallel`` is not part of the trials' key."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("nni")

import nas.space  # noqa: E402,F401  (imports NNI without its torch-version warnings)

import nas.evaluator as evaluator  # noqa: E402
from nas.config import NasConfig, TrainConfig, load_config  # noqa: E402
from nas.evaluator import train_architecture  # noqa: E402
from nas.experiment import records_dir, train_fingerprint  # noqa: E402
from nas.proxy import early_stopping_steps  # noqa: E402
from nas.space import parse_arch  # noqa: E402
from tests.nas_util import ARCHS, provider, space, split  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore:.*is found to be not a nn.Module")

# 30 images a proxy (ipc 3) in minibatches of 16: two steps an epoch, the last one short; lr x0.1
# at step 4 of 8; a curve point at epoch 2.
TRAIN = TrainConfig(epochs=4, whole_epochs=1, report_every=2, batch=16, repeats=3, parallel=1)


def trained(space, arch, proxy, train, monkeypatch, **kwargs):
    """``(record, final networks' weights, curve reported)`` of one trial; the weights are
    captured where the trial validates its trained networks."""
    weights, curve = [], []
    real_accuracy = evaluator.accuracy

    def spy(net, images, labels, **kw):
        weights.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return real_accuracy(net, images, labels, **kw)

    monkeypatch.setattr(evaluator, "accuracy", spy)
    rec = train_architecture(space.freeze(parse_arch(arch)), proxy, train,
                             report=lambda epoch, acc: curve.append((epoch, acc)), **kwargs)
    monkeypatch.setattr(evaluator, "accuracy", real_accuracy)
    return rec, weights, curve


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.parametrize("arch,kind,augment", [(ARCHS[0], "random", "none"), (ARCHS[1], "random", "dsa"),
                                               (ARCHS[1], "whole", "dc"), (ARCHS[0], "early-stopping", "none")])
def test_stacked_repeats_are_the_loops_repeats(split, provider, space, monkeypatch, arch, kind, augment):
    # Own initialisation, data order, minibatch permutation and augmentation per repeat; BatchNorm's
    # running statistics stacked; the whole set's many minibatches a pass and early stopping's pass
    # cut at its budget.
    proxy = provider.get(kind)
    train = dataclasses.replace(TRAIN, augment=augment)
    loop, loop_weights, loop_curve = trained(space, arch, proxy, train, monkeypatch)
    stacked, stacked_weights, stacked_curve = trained(space, arch, proxy, dataclasses.replace(train, parallel=3),
                                                      monkeypatch)
    # the loop validates every repeat's curve, the stacked path the first repeat's only (the one kept)
    finals = [w for i, w in enumerate(loop_weights) if i % (len(loop_weights) // 3) == len(loop_weights) // 3 - 1]
    assert len(finals) == 3 and len(stacked_weights[-3:]) == 3
    assert all(max_difference(a, b) < 1e-5 for a, b in zip(finals, stacked_weights[-3:]))
    assert max_difference(finals[0], finals[1]) > 1e-3                      # three different networks
    n_val = len(split.val)
    assert stacked.accuracies == pytest.approx(loop.accuracies, abs=1.5 / n_val)
    assert stacked.accuracy == pytest.approx(loop.accuracy, abs=1.5 / n_val)
    assert (stacked.steps, stacked.images_seen) == (loop.steps, loop.images_seen)
    assert [e for e, _ in stacked.intermediate] == [e for e, _ in loop.intermediate]
    assert [a for _, a in stacked.intermediate] == pytest.approx([a for _, a in loop.intermediate], abs=1.5 / n_val)
    assert [e for e, _ in stacked_curve] == [e for e, _ in loop_curve]   # report: the first repeat's curve
    assert stacked.status == "finished" and stacked.device == "cpu" and stacked.seconds > stacked.eval_seconds > 0


def test_budgets_of_a_stacked_trial(split, provider, space):
    train = dataclasses.replace(TRAIN, parallel=3)
    es = train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("early-stopping"), train)
    steps = early_stopping_steps(TRAIN.epochs, 3, 10, TRAIN.batch)          # 8 steps, within the first pass
    assert steps < -(-len(split.train) // TRAIN.batch)
    assert es.steps == 3 * steps and es.images_seen == 3 * steps * TRAIN.batch
    whole = train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("whole"), train)
    assert whole.steps == 3 * -(-len(split.train) // TRAIN.batch) and whole.images_seen == 3 * len(split.train)
    proxy = train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("random"), train)
    assert proxy.steps == 3 * TRAIN.epochs * 2 and proxy.images_seen == 3 * TRAIN.epochs * 30


def test_chunks_give_the_accuracies_of_the_loop(split, provider, space):
    # repeats 3 in chunks of 2: seeds 0-1 stacked, seed 2 alone
    proxy = provider.get("random")
    build = lambda: space.freeze(parse_arch(ARCHS[1]))  # noqa: E731
    loop = train_architecture(build(), proxy, TRAIN)
    chunks = train_architecture(build(), proxy, dataclasses.replace(TRAIN, parallel=2))
    assert chunks.accuracies == pytest.approx(loop.accuracies, abs=1.5 / len(split.val))
    assert chunks.accuracies[2] == loop.accuracies[2]                      # a chunk of one is the loop
    assert (chunks.steps, chunks.images_seen) == (loop.steps, loop.images_seen)


def test_a_stacked_trial_checkpoints_each_chunk_and_resumes_with_the_missing_seeds(split, provider, space,
                                                                                  monkeypatch):
    proxy = provider.get("random")
    train = dataclasses.replace(TRAIN, repeats=4, parallel=2)
    build = lambda: space.freeze(parse_arch(ARCHS[1]))  # noqa: E731
    fresh = train_architecture(build(), proxy, dataclasses.replace(train, parallel=1))

    real, chunks, saved = evaluator._train_stacked, [], []

    def train_stacked(net, proxy, train, seeds, **kwargs):
        chunks.append(list(seeds))
        if len(chunks) == 2:
            raise KeyboardInterrupt  # the machine goes away during the second chunk
        return real(net, proxy, train, seeds, **kwargs)

    monkeypatch.setattr(evaluator, "_train_stacked", train_stacked)
    checkpoint = lambda rec: saved.append(dataclasses.replace(rec, accuracies=list(rec.accuracies)))  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        train_architecture(build(), proxy, train, checkpoint=checkpoint)
    assert chunks == [[0, 1], [2, 3]] and len(saved) == 1                  # a checkpoint after the first chunk
    partial = saved[0]
    assert partial.status == "partial" and len(partial.accuracies) == 2
    assert partial.steps == 2 * 8 and partial.intermediate                  # the first repeat's curve

    done = train_architecture(build(), proxy, train, done=partial, checkpoint=checkpoint)
    assert chunks == [[0, 1], [2, 3], [2, 3]]                               # the rerun trains seeds 2 and 3 only
    assert len(saved) == 1                                                  # its last chunk: no checkpoint
    assert done.status == "finished" and done.accuracies[:2] == partial.accuracies
    assert done.accuracies == pytest.approx(fresh.accuracies, abs=1.5 / len(split.val))
    assert (done.steps, done.images_seen) == (fresh.steps, fresh.images_seen)
    assert done.intermediate == partial.intermediate

    # A partial record of the loop (one training) goes on stacked: seeds 1-3 in one chunk.
    monkeypatch.setattr(evaluator, "_train_stacked", real)
    one = train_architecture(build(), proxy, dataclasses.replace(train, repeats=1, parallel=1))
    one = dataclasses.replace(one, status="partial")
    resumed = train_architecture(build(), proxy, dataclasses.replace(train, parallel=3), done=one)
    assert resumed.accuracies[0] == fresh.accuracies[0]
    assert resumed.accuracies == pytest.approx(fresh.accuracies, abs=1.5 / len(split.val))
    assert (resumed.steps, resumed.images_seen) == (fresh.steps, fresh.images_seen)


def test_the_default_is_the_loop_on_a_cpu(provider, space, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("stacked on a CPU by default")

    monkeypatch.setattr(evaluator, "_train_stacked", refuse)
    rec = train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("random"),
                             dataclasses.replace(TRAIN, parallel=None), device="cpu")
    assert len(rec.accuracies) == 3


def test_parallel_is_not_part_of_the_trial_key(provider, tmp_path):
    # A run with train.parallel set reuses the records (and results files) of one without: same key.
    proxy = provider.get("random")
    plain = NasConfig(train=dataclasses.replace(TRAIN, parallel=None))
    stacked = NasConfig(train=dataclasses.replace(TRAIN, parallel=8))
    for kind in ("whole", "random", "early-stopping"):
        assert train_fingerprint(kind, plain) == train_fingerprint(kind, stacked)
        assert "parallel" not in train_fingerprint(kind, stacked)
    assert records_dir(tmp_path, proxy, plain) == records_dir(tmp_path, proxy, stacked)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_parallel_must_be_a_positive_integer(provider, space, bad):
    with pytest.raises(ValueError, match=rf"train.parallel must be a positive integer .* got {bad!r}"):
        train_architecture(space.freeze(parse_arch(ARCHS[0])), provider.get("random"),
                           dataclasses.replace(TRAIN, parallel=bad))
    with pytest.raises(ValueError, match=r"train.parallel must be a positive integer"):
        NasConfig(train=dataclasses.replace(TRAIN, parallel=bad)).validate()


def test_parallel_is_a_config_field():
    assert load_config(overrides=[{"train": {"parallel": 4}}]).train.parallel == 4
    with pytest.raises(ValueError, match=r"train.parallel must be a positive integer .* got 0"):
        load_config(overrides=[{"train": {"parallel": 0}}])
