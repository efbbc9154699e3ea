"""CondensedReplayPlugin inside Avalanche strategies: Naive, LwF, loggers, checkpoints, forgetting."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest
import torch

from tests.avalanche_util import (TINY_NET, blob_stream, exp_accuracy, one_thread, quiet_evaluator,  # noqa: F401
                                  tensor_dataset, tiny_learner)

from avalanche.training.plugins import LwFPlugin, ReplayPlugin, SupervisedPlugin  # noqa: E402
from avalanche.training.supervised import Naive  # noqa: E402

import dc_plugins  # noqa: E402
from dc_plugins.avalanche import CondensedBuffer, CondensedReplayPlugin, MemoryTooSmallError  # noqa: E402
from dc_plugins.avalanche.checkpoint import maybe_load_checkpoint, save_checkpoint  # noqa: E402

FAST = dict(net=TINY_NET, preset="cpu-quick", progress=False)


class LoaderProbe(SupervisedPlugin):
    """Records, per experience, the data loader's type and the largest minibatch seen."""

    def __init__(self):
        super().__init__()
        self.loaders: list[str] = []
        self.max_batch: list[int] = []

    def before_training_exp(self, strategy, **kwargs):
        self.max_batch.append(0)

    def before_training_epoch(self, strategy, **kwargs):
        self.loaders.append(type(strategy.dataloader).__name__)

    def before_forward(self, strategy, **kwargs):
        self.max_batch[-1] = max(self.max_batch[-1], strategy.mb_x.shape[0])


def naive(model, plugins, evaluator=None, epochs=2):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Naive(model=model, optimizer=opt, train_mb_size=16, train_epochs=epochs, eval_mb_size=256,
                 plugins=plugins, evaluator=evaluator or quiet_evaluator())


@pytest.mark.parametrize("with_lwf", [False, True], ids=["replay", "replay+lwf"])
def test_plugin_runs_three_experiences_in_naive(with_lwf, tmp_path):
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.logging import CSVLogger
    from avalanche.training.plugins import EvaluationPlugin

    bm = blob_stream("class", experiences=3, classes=2)
    replay = CondensedReplayPlugin(mem_size=30, method="dm", ipc=5, iterations=2, **FAST)
    probe = LoaderProbe()
    plugins = [replay, probe] + ([LwFPlugin(alpha=1.0, temperature=2.0)] if with_lwf else [])
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loss_metrics(stream=True),
                                 loggers=[CSVLogger(str(tmp_path / "logs"))])
    strategy = naive(tiny_learner(6), plugins, evaluator)
    for i, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        assert len(replay.buffer) == 10 * (i + 1)  # 5 per class, 2 classes per experience
        assert set(replay.buffer.class_counts().values()) == {5}
        metrics = strategy.eval(bm.test_stream[:i + 1])
        assert all(0.0 <= exp_accuracy(metrics, j) <= 1.0 for j in range(i + 1))
    assert sorted(replay.buffer.buffer.targets.uniques) == list(range(6))
    # from the second experience on, batches mix 16 current items and up to 16 memory items
    assert probe.loaders[2:] == ["ReplayDataLoader"] * 4 and probe.loaders[0] != "ReplayDataLoader"
    assert probe.max_batch == [16, 16 + 10, 16 + 16]  # the memory holds 10, then 20 items
    if with_lwf:
        lwf = plugins[2].lwf
        assert lwf.prev_model is not None and lwf.prev_classes_by_task[0] == set(range(6))
    eval_log = (tmp_path / "logs" / "eval_results.csv").read_text().splitlines()
    assert "eval_exp" in eval_log[0] and len(eval_log) == 1 + 6, eval_log  # 1 + 2 + 3 evaluations


def test_buffer_is_a_storage_policy_for_avalanches_replay_plugin():
    bm = blob_stream("class", experiences=2, classes=2)
    buffer = CondensedBuffer(12, method="random", **FAST)
    probe = LoaderProbe()
    strategy = naive(tiny_learner(4), [ReplayPlugin(mem_size=12, storage_policy=buffer), probe], epochs=1)
    for exp in bm.train_stream:
        strategy.train(exp)
    assert buffer.class_counts() == {(0, c): 3 for c in range(4)}
    assert probe.loaders[-1] == "ReplayDataLoader" and probe.max_batch[-1] == 16 + 6  # 3 per class, final


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _unchanged(before, model) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_mem_size_too_small_fails_before_training():
    bm = blob_stream("class", experiences=2, classes=2)
    # the stream's 4 classes are known: refused before the first experience trains
    model = tiny_learner(4)
    strategy = naive(model, [CondensedReplayPlugin(3, method="random", **FAST)], epochs=1)
    before = _params(model)
    with pytest.raises(MemoryTooSmallError, match=r"mem_size=3 .* of the stream \(4, counting each class"):
        strategy.train(bm.train_stream[0])
    assert _unchanged(before, model)
    # without looking ahead: refused before the second experience trains
    model = tiny_learner(4)
    strategy = naive(model, [CondensedReplayPlugin(3, method="random", total_classes="adaptive", **FAST)], epochs=1)
    strategy.train(bm.train_stream[0])
    before = _params(model)
    with pytest.raises(MemoryTooSmallError, match=r"mem_size=3 .* seen so far \(4, counting each class"):
        strategy.train(bm.train_stream[1])
    assert _unchanged(before, model)  # nothing trained


def test_budget_checked_before_training_with_plain_replay_plugin():
    """Given to Avalanche's own ReplayPlugin, the buffer checks the next experience when
    ReplayPlugin.before_training_exp reads it, before any training step; the first experience
    (nothing of the storage policy runs before it in Avalanche 0.6) is checked in post_adapt."""
    bm = blob_stream("class", experiences=2, classes=2)
    model = tiny_learner(4)
    buffer = CondensedBuffer(3, method="random", total_classes="adaptive", **FAST)
    strategy = naive(model, [ReplayPlugin(3, storage_policy=buffer)], epochs=1)
    strategy.train(bm.train_stream[0])
    before = _params(model)
    with pytest.raises(MemoryTooSmallError, match=r"mem_size=3 .* seen so far \(4"):
        strategy.train(bm.train_stream[1])
    assert _unchanged(before, model)
    known = CondensedBuffer(3, method="random", **FAST)
    strategy = naive(tiny_learner(4), [ReplayPlugin(3, storage_policy=known)], epochs=1)
    with pytest.raises(MemoryTooSmallError, match=r"of the stream \(4"):
        strategy.train(bm.train_stream[0])  # raised by post_adapt, before anything is condensed
    assert len(known) == 0


def _stream_of_shapes(*shapes):
    from avalanche.benchmarks import benchmark_from_datasets

    def ds(shape, seed):
        g = torch.Generator().manual_seed(seed)
        return tensor_dataset(torch.randn(12, *shape, generator=g), torch.arange(12) % 2)

    return benchmark_from_datasets(train=[ds(s, i) for i, s in enumerate(shapes)],
                                   test=[ds(s, 9 + i) for i, s in enumerate(shapes)])


@pytest.mark.parametrize("shapes, match", [
    (((1, 8, 6),), r"needs square images; the stream yields 1x8x6"),
    (((1, 8, 8), (1, 6, 6)), r"experience images are 1x6x6, the memory's are 1x8x8"),
    (((1, 2, 2),), r"1x2x2 images do not fit the condensation network"),
], ids=["non-square", "other-size", "too-small"])
def test_unexpected_image_shapes_are_refused_before_training(shapes, match):
    bm = _stream_of_shapes(*shapes)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4))
    model(torch.zeros(1, *shapes[0]))
    strategy = naive(model, [CondensedReplayPlugin(8, method="random", **{**FAST, "net": "convnet-w8-d3"})], epochs=1)
    for exp in bm.train_stream[:-1]:
        strategy.train(exp)
    before = _params(model)
    with pytest.raises(ValueError, match=match):
        strategy.train(bm.train_stream[len(shapes) - 1])
    assert _unchanged(before, model)


def test_signature_is_replay_plugins():
    """Same positional parameters, order and defaults as ReplayPlugin; the rest keyword-only."""
    import inspect

    ours = list(inspect.signature(CondensedReplayPlugin.__init__).parameters.values())[1:]
    theirs = list(inspect.signature(ReplayPlugin.__init__).parameters.values())[1:]
    assert [(p.name, p.default) for p in ours[:len(theirs)]] == [(p.name, p.default) for p in theirs]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in ours[len(theirs):])
    buffer = CondensedBuffer(12, method="random", **FAST)
    plugin = CondensedReplayPlugin(12, 8, 4, True, buffer)
    assert (plugin.mem_size, plugin.batch_size, plugin.batch_size_mem, plugin.task_balanced_dataloader,
            plugin.storage_policy) == (12, 8, 4, True, buffer)
    with pytest.raises(TypeError, match=r"condensation options \['ipc', 'iterations'\] given with a ready"):
        CondensedReplayPlugin(12, storage_policy=buffer, ipc=3, iterations=2)
    with pytest.raises(TypeError):
        CondensedReplayPlugin(12, None, None, False, None, "dm")  # method is keyword-only


def test_unknown_method_fails_at_construction():
    with pytest.raises(ValueError, match="unknown method 'gdumb'; allowed: dc, dsa, dm"):
        CondensedReplayPlugin(mem_size=10, method="gdumb")
    with pytest.raises(ValueError, match="differs from mem_size=20"):
        CondensedReplayPlugin(mem_size=20, storage_policy=CondensedBuffer(10))


def test_checkpoint_round_trip_keeps_the_buffer(tmp_path):
    bm = blob_stream("class", experiences=3, classes=2)

    def build():
        replay = CondensedReplayPlugin(mem_size=30, method="dm", ipc=5, iterations=2, **FAST)
        return naive(tiny_learner(6), [replay, LwFPlugin()], epochs=1), replay

    strategy, replay = build()
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    path = tmp_path / "checkpoint.pkl"
    save_checkpoint(strategy, path)

    fresh, fresh_replay = build()
    assert len(fresh_replay.buffer) == 0
    fresh, start = maybe_load_checkpoint(fresh, str(path))
    assert start == 2
    loaded = fresh.plugins[0].storage_policy
    assert loaded.groups.keys() == replay.buffer.groups.keys()
    assert all(torch.equal(loaded.groups[k].images, replay.buffer.groups[k].images) for k in loaded.groups)
    assert [loaded.buffer[i][1] for i in range(len(loaded))] == [replay.buffer.buffer[i][1] for i in range(len(loaded))]
    fresh.train(bm.train_stream[2])  # training goes on from the restored state
    assert len(loaded) == 30 and len(loaded.class_counts()) == 6


def _old_class_accuracy(plugins_for, seed: int) -> float:
    bm = blob_stream("class", experiences=3, classes=2, seed=seed)
    strategy = naive(tiny_learner(6, seed=seed), plugins_for(seed), epochs=3)
    for exp in bm.train_stream:
        strategy.train(exp)
    metrics = strategy.eval(bm.test_stream)
    return statistics.fmean(exp_accuracy(metrics, j) for j in (0, 1))  # the first two experiences


def test_condensed_memory_forgets_less_than_no_replay():
    seeds = [0, 1, 2]
    condensed = [_old_class_accuracy(
        lambda s: [CondensedReplayPlugin(mem_size=30, method="dc", ipc=5, iterations=3, seed=s,
                                         matching={"init": "real"}, **FAST)], s) for s in seeds]
    no_replay = [_old_class_accuracy(lambda s: [], s) for s in seeds]
    # class-incremental without memory forgets the old classes almost entirely
    assert statistics.fmean(condensed) >= statistics.fmean(no_replay) + 0.25, (condensed, no_replay)


def test_lazy_import_from_the_package():
    assert dc_plugins.CondensedReplayPlugin is CondensedReplayPlugin
    assert dc_plugins.CondensedBuffer is CondensedBuffer
    code = "import sys, dc_plugins; assert 'avalanche' not in sys.modules, 'engine imported avalanche'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_task_balanced_dataloader_over_the_memory():
    """ReplayPlugin's task_balanced_dataloader splits the memory by task (its task_set)."""
    bm = blob_stream("task", experiences=3, classes=2)
    probe = LoaderProbe()
    replay = CondensedReplayPlugin(12, None, 4, True, method="random", **FAST)
    strategy = naive(tiny_learner(2), [replay, probe], epochs=1)
    for exp in bm.train_stream:
        strategy.train(exp)
    assert sorted(replay.buffer.buffer.task_set.keys()) == [0, 1, 2]
    assert probe.loaders[-1] == "ReplayDataLoader" and probe.max_batch[-1] == 16 + 4
