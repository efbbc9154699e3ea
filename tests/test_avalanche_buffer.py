"""CondensedBuffer on its own: item structure, budget, class balance, fallbacks, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import TensorDataset
from torch.utils.data.dataloader import default_collate

from tests.avalanche_util import TINY_NET, blob_domain, blob_stream, one_thread, tensor_dataset  # noqa: F401

from dc_plugins.avalanche import CondensedBuffer, CondensedReplayConfig, MemoryTooSmallError  # noqa: E402
from dc_plugins.avalanche.items import item_signature  # noqa: E402


def fast(**kw) -> dict:
    """Settings for a cheap but real condensation."""
    base = dict(method="random", net=TINY_NET, preset="cpu-quick", progress=False)
    base.update(kw)
    return base


def _no_task_stream():
    """Items (Tensor, Tensor) with `targets` only: a stream without task labels."""
    from avalanche.benchmarks import benchmark_from_datasets
    from avalanche.benchmarks.utils import DataAttribute, make_avalanche_dataset

    def ds(seed):
        d = blob_domain(12, 3, seed=seed)
        return make_avalanche_dataset(TensorDataset(d.images, d.labels),
                                      data_attributes=[DataAttribute(d.labels.tolist(), "targets")])

    return benchmark_from_datasets(train=[ds(0), ds(1)], test=[ds(2), ds(3)])


def _tensor_label_stream():
    """Items (Tensor, Tensor, int): tensor labels plus Avalanche's task-label attribute."""
    from avalanche.benchmarks import benchmark_from_datasets
    from avalanche.benchmarks.utils import DataAttribute, TaskLabels, make_avalanche_dataset

    def ds(seed):
        d = blob_domain(12, 3, seed=seed)
        return make_avalanche_dataset(TensorDataset(d.images, d.labels),
                                      data_attributes=[DataAttribute(d.labels.tolist(), "targets"),
                                                       TaskLabels([0] * len(d.labels))])

    return benchmark_from_datasets(train=[ds(0), ds(1)], test=[ds(2), ds(3)])


@pytest.mark.parametrize("make_stream, expected", [
    (lambda: blob_stream("class"), (("Tensor",), ("int",), ("int",))),
    (lambda: blob_stream("task"), (("Tensor",), ("int",), ("int",))),
    (_no_task_stream, (("Tensor",), ("Tensor",))),
    (_tensor_label_stream, (("Tensor",), ("Tensor",), ("int",))),
], ids=["class-incremental", "task-incremental", "no-task-labels", "tensor-labels"])
def test_items_have_the_stream_structure_and_collate_with_it(make_stream, expected):
    bm = make_stream()
    buffer = CondensedBuffer(15, **fast())  # 5 per class, then 2: selected, not all kept
    for exp in bm.train_stream:
        buffer.post_adapt(None, exp)
        stream_item, memory_item = exp.dataset[0], buffer.buffer[0]
        assert item_signature(memory_item) == item_signature(stream_item)
        assert tuple(t[0] for t in item_signature(memory_item)) == tuple(e[0] for e in expected)
        # what ReplayDataLoader relies on: one collate function for both
        batch = default_collate([stream_item, memory_item])
        assert batch[0].shape == (2, *stream_item[0].shape)
    data = buffer.buffer
    assert sorted(set(data.targets)) == sorted(set(int(t) for e in bm.train_stream for t in e.dataset.targets))
    assert hasattr(data, "targets_task_labels") == hasattr(bm.train_stream[0].dataset, "targets_task_labels")


def test_task_labels_are_kept_per_item():
    bm = blob_stream("task", experiences=3, classes=2)
    buffer = CondensedBuffer(60, **fast(ipc=4))
    for exp in bm.train_stream:
        buffer.post_adapt(None, exp)
    data = buffer.buffer
    tasks = list(data.targets_task_labels)
    assert sorted(set(tasks)) == [0, 1, 2]
    assert [tasks.count(t) for t in range(3)] == [8, 8, 8]  # 2 classes x 4 images per task
    for i in range(len(data)):
        assert data[i][2] == tasks[i]
    # labels restart at 0 in each task, and each (task, class) is its own group
    assert buffer.class_counts() == {(t, c): 4 for t in range(3) for c in range(2)}


def test_fixed_budget_uses_every_slot_at_the_final_share(digits_stream):
    """The stream exposes its 10 classes: each class is stored once, at the share it will have
    at the end (23 = 3, 3, 3, 2, ..., 2 as Avalanche's balanced buffers split it), never trimmed."""
    mem_size = 23
    buffer = CondensedBuffer(mem_size, **fast())
    final = [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    first = None
    for i, exp in enumerate(digits_stream.train_stream):
        buffer.post_adapt(None, exp)
        counts = buffer.class_counts()
        assert len(buffer.buffer) == len(buffer) == sum(final[:2 * (i + 1)]) <= mem_size
        assert [counts[(0, c)] for c in range(2 * (i + 1))] == final[:2 * (i + 1)], counts
        if first is None:
            first = {k: g.images.clone() for k, g in buffer.groups.items()}
        assert all(torch.equal(buffer.groups[k].images, v) for k, v in first.items())  # never re-selected
    assert len(buffer) == mem_size


def test_adaptive_budget_uses_every_slot_and_reselects_by_rank(digits_stream):
    """Without the stream's size the share shrinks; every slot is still used, and a coreset
    group keeps the head of its selection order."""
    mem_size = 23
    buffer = CondensedBuffer(mem_size, **fast(total_classes="adaptive"))
    before = None
    for i, exp in enumerate(digits_stream.train_stream):
        buffer.post_adapt(None, exp)
        counts = buffer.class_counts()
        assert len(buffer.buffer) == len(buffer) == mem_size
        expected = [23 // (2 * (i + 1)) + (1 if c < 23 % (2 * (i + 1)) else 0) for c in range(2 * (i + 1))]
        assert [counts[(0, c)] for c in range(2 * (i + 1))] == expected
        group = buffer.groups[(0, 0, 0)]
        if before is not None:
            assert group.indices == before[:len(group)]  # head of the random selection order
        before = group.indices


def test_adaptive_condensed_groups_are_reselected_by_herding():
    from dc_plugins.coreset import herding

    bm = blob_stream("class", experiences=2, classes=2)
    buffer = CondensedBuffer(8, **fast(method="dm", iterations=2, total_classes="adaptive"))
    buffer.post_adapt(None, bm.train_stream[0])
    stored = {k: g.images.clone() for k, g in buffer.groups.items()}
    assert {len(v) for v in stored.values()} == {4}
    buffer.post_adapt(None, bm.train_stream[1])
    for k, images in stored.items():
        kept = buffer.groups[k].images
        assert kept.shape[0] == 2
        assert torch.equal(kept, images[herding(images.flatten(1).double(), 2)])


def test_total_classes_given_explicitly():
    bm = blob_stream("class", experiences=3, classes=2)
    buffer = CondensedBuffer(13, **fast(total_classes=4))  # more classes than the first two experiences
    buffer.post_adapt(None, bm.train_stream[0])
    assert [len(buffer.groups[(0, 0, c)]) for c in range(2)] == [4, 3]  # 13 = 4, 3, 3, 3
    buffer.post_adapt(None, bm.train_stream[1])
    buffer.post_adapt(None, bm.train_stream[2])  # a fifth and sixth class: adaptive from here on
    assert len(buffer) == 13 and len(buffer.groups) == 6


def test_per_class_budget_grows_then_falls_back_to_the_equal_share(digits_stream):
    adaptive = CondensedBuffer(30, **fast(ipc=4, total_classes="adaptive"))
    known = CondensedBuffer(30, **fast(ipc=4))
    sizes, known_sizes = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for exp in digits_stream.train_stream:
            adaptive.post_adapt(None, exp)
            known.post_adapt(None, exp)
            sizes.append(len(adaptive))
            known_sizes.append(len(known))
            assert len(adaptive) <= 30 and len(known) <= 30
    assert sizes == [8, 16, 24, 30, 30]  # 4/class until 8 classes need 32; then the equal share
    assert known_sizes == [6, 12, 18, 24, 30]  # 4 x 10 > 30 known from the start: 3 per class
    assert set(adaptive.class_counts().values()) == set(known.class_counts().values()) == {3}
    assert any("falling back to the equal share" in str(w.message) for w in caught)


def test_mem_size_smaller_than_classes_is_a_clear_error(digits_stream):
    buffer = CondensedBuffer(3, **fast(total_classes="adaptive"))
    buffer.post_adapt(None, digits_stream.train_stream[0])  # 2 classes fit
    with pytest.raises(MemoryTooSmallError, match=r"mem_size=3 is smaller than the number of classes seen so far \(4"):
        buffer.post_adapt(None, digits_stream.train_stream[1])
    assert len(buffer) == 3 and len(buffer.class_counts()) == 2  # unchanged
    known = CondensedBuffer(9, **fast())
    with pytest.raises(MemoryTooSmallError, match=r"mem_size=9 is smaller than the number of classes of the stream \(10"):
        known.check_experience(digits_stream.train_stream[0])


@pytest.mark.parametrize("bad, match", [
    ({"method": "nope"}, "unknown method 'nope'; allowed: dc, dsa, dm, mtt, selmatch, random, herding"),
    ({"method": "mtt", "trajectory": {"syn_steps": 0}}, "trajectory.syn_steps must be a positive integer, got 0"),
    ({"method": "mtt", "trajectory": {"gradient": "tesla"}}, "trajectory.gradient must be 'exact' or 'unrolled'"),
    ({"ipc": 0}, "ipc must be a positive integer"),
    ({"preset": "fast"}, "unknown preset 'fast'; allowed: paper, cpu-quick"),
    ({"net": "convnet-w8-bogus"}, "cannot parse 'bogus'"),
])
def test_bad_settings_name_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        CondensedBuffer(10, **bad)


def test_bad_mem_size_and_unknown_keys():
    with pytest.raises(ValueError, match="mem_size must be a positive integer, got 0"):
        CondensedBuffer(0)
    with pytest.raises(KeyError, match="unknown config key 'iters'"):
        CondensedBuffer(10, iters=3)


def test_class_with_fewer_images_than_its_share_is_stored_real():
    from dc_plugins.avalanche.streams import stream_from_domains

    d = blob_domain(20, 3)
    keep = torch.cat([torch.nonzero(d.labels != 2).flatten(), torch.nonzero(d.labels == 2).flatten()[:3]])
    small = d.subset(keep)  # class 2 has 3 images
    bm = stream_from_domains([(small, small)], "class")
    buffer = CondensedBuffer(15, **fast(method="dm", iterations=2))  # share 5 per class
    with pytest.warns(UserWarning, match=r"classes \[2\] have no more real images \(\[3\]\) than their share of 5"):
        buffer.post_adapt(None, bm.train_stream[0])
    assert buffer.class_counts() == {(0, 0): 5, (0, 1): 5, (0, 2): 3}
    stored = buffer.groups[(0, 0, 2)]
    assert torch.equal(stored.images, small.images[small.labels == 2])  # the real images themselves
    assert stored.indices == torch.nonzero(small.labels == 2).flatten().tolist()  # replayed from the stream
    data = buffer.buffer  # condensed and real items in one dataset, items shaped like the stream's
    assert len(data) == 13 and sorted(data.targets) == [0] * 5 + [1] * 5 + [2] * 3
    assert {item_signature(data[i]) for i in range(13)} == {item_signature(bm.train_stream[0].dataset[0])}


def test_condensation_learns_new_images_reproducibly():
    bm = blob_stream("class", experiences=1, classes=3)
    real = torch.stack([bm.train_stream[0].dataset[i][0] for i in range(len(bm.train_stream[0].dataset))])
    # from real images: a set started from noise would pass "no stored image is a real one" untrained
    a = CondensedBuffer(9, **fast(method="dc", iterations=2, seed=3, matching={"init": "real"}))
    b = CondensedBuffer(9, **fast(method="dc", iterations=2, seed=3, matching={"init": "real"}))
    a.post_adapt(None, bm.train_stream[0])
    b.post_adapt(None, bm.train_stream[0])
    assert a.class_counts() == {(0, c): 3 for c in range(3)}
    for key, group in a.groups.items():
        images = group.images
        assert group.condensed and torch.equal(images, b.groups[key].images)  # same seed, same set
        # learned: every stored image moved away from the real image it started from
        dist = torch.cdist(images.flatten(1), real.flatten(1))
        assert dist.min() > 1e-3
    assert a.history[0]["method"] == "dc" and a.history[0]["ipc"] == 3


def test_cache_reuses_a_condensed_set(tmp_path):
    bm = blob_stream("class", experiences=1, classes=2)
    first = CondensedBuffer(6, **fast(method="dm", iterations=3, cache_dir=str(tmp_path)))
    first.post_adapt(None, bm.train_stream[0])
    second = CondensedBuffer(6, **fast(method="dm", iterations=3, cache_dir=str(tmp_path)))
    second.post_adapt(None, bm.train_stream[0])
    assert [h["cached"] for h in first.history + second.history] == [False, True]
    assert all(torch.equal(first.groups[k].images, second.groups[k].images) for k in first.groups)
    coreset = [CondensedBuffer(6, **fast(method="herding", cache_dir=str(tmp_path))) for _ in range(2)]
    for buffer in coreset:
        buffer.post_adapt(None, bm.train_stream[0])
    assert [b.history[0]["cached"] for b in coreset] == [False, True]
    assert all(coreset[1].groups[k].indices == g.indices and not g.condensed for k, g in coreset[0].groups.items())
    for changed in (dict(seed=1), dict(iterations=4), dict(matching={"lr_img": 0.5})):
        other = CondensedBuffer(6, **fast(**{"method": "dm", "iterations": 3, "cache_dir": str(tmp_path), **changed}))
        other.post_adapt(None, bm.train_stream[0])
        assert other.history[0]["cached"] is False, changed


def test_resize_trims_and_refuses_too_small(digits_stream):
    buffer = CondensedBuffer(40, **fast(total_classes="adaptive"))
    buffer.post_adapt(None, digits_stream.train_stream[0])
    buffer.post_adapt(None, digits_stream.train_stream[1])
    assert set(buffer.class_counts().values()) == {10}
    buffer.resize(None, 13)
    assert list(buffer.class_counts().values()) == [4, 3, 3, 3] and len(buffer.buffer) == 13
    with pytest.raises(MemoryTooSmallError):
        buffer.resize(None, 3)
    assert buffer.max_size == 13


def test_config_from_yaml(tmp_path):
    path = tmp_path / "replay.yaml"
    path.write_text("replay:\n  method: dm\n  ipc: 5\n  iterations: 7\n  matching:\n    lr_img: 0.5\n")
    cfg = CondensedReplayConfig.from_yaml(path, key="replay")
    assert (cfg.method, cfg.ipc, cfg.iterations, cfg.matching.lr_img) == ("dm", 5, 7, 0.5)
    assert cfg.resolved(5).iterations == 7
    path.write_text("method: dc\nipc: -1\n")
    with pytest.raises(ValueError, match="ipc must be a positive integer or None, got -1"):
        CondensedReplayConfig.from_yaml(path)


@pytest.fixture(scope="module")
def digits_stream():
    from dc_plugins.avalanche.streams import sklearn_digits_stream

    return sklearn_digits_stream(5)


def test_one_class_experience_is_condensed_too():
    """With a single class the matching network still gets two outputs, so DC's gradients are
    not identically zero and the images move away from their initialisation."""
    from dc_plugins.avalanche.streams import stream_from_domains

    d = blob_domain(20, 1)
    bm = stream_from_domains([(d, d)], "class")
    buffer = CondensedBuffer(4, **fast(method="dc", iterations=2, matching={"init": "real"}))
    buffer.post_adapt(None, bm.train_stream[0])
    images = buffer.groups[(0, 0, 0)].images
    assert images.shape == (4, 1, 8, 8)
    assert torch.cdist(images.flatten(1), d.images.flatten(1)).min() > 1e-3  # learned, not copied


def test_interrupted_condensation_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """With cache_dir a running condensation is checkpointed; a rerun after an interruption
    resumes mid-condensation and ends with the set an uninterrupted run makes."""
    from dc_plugins.matching import DistributionMatcher

    bm = blob_stream("class", experiences=1, classes=2)
    settings = fast(method="dm", iterations=6, checkpoint_every_s=0)
    reference = CondensedBuffer(6, **settings)
    reference.post_adapt(None, bm.train_stream[0])

    step = DistributionMatcher.step
    calls = {"n": 0}

    def interrupted(self):
        if calls["n"] == 4:
            raise KeyboardInterrupt
        calls["n"] += 1
        return step(self)

    monkeypatch.setattr(DistributionMatcher, "step", interrupted)
    first = CondensedBuffer(6, **settings, cache_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        first.post_adapt(None, bm.train_stream[0])
    assert [p.name.endswith(".partial.pt") for p in tmp_path.iterdir()] == [True]  # no finished set
    monkeypatch.setattr(DistributionMatcher, "step", step)
    resumed = CondensedBuffer(6, **settings, cache_dir=str(tmp_path))
    resumed.post_adapt(None, bm.train_stream[0])
    assert resumed.history[0]["resumed_from"] == 4 and resumed.history[0]["cached"] is False
    for key, group in reference.groups.items():
        assert torch.equal(group.images, resumed.groups[key].images)
    assert [p.name.endswith(".partial.pt") for p in tmp_path.iterdir()] == [False]  # the set, no checkpoint


def _augmented_stream():
    """A stream whose train transform is random (flip + padded crop on tensors); eval has none."""
    from avalanche.benchmarks import benchmark_from_datasets
    from avalanche.benchmarks.utils import TransformGroups
    from torchvision import transforms

    random_train = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.RandomCrop(8, padding=2)])

    def ds(seed):
        d = blob_domain(12, 2, seed=seed)
        base = tensor_dataset(d.images, d.labels)
        return type(base)([base], transform_groups=TransformGroups({"train": random_train, "eval": None})).train()

    return benchmark_from_datasets(train=[ds(0)], test=[ds(1)])


def _differs_between_reads(data) -> bool:
    first = torch.stack([data[i][0] for i in range(len(data))])
    second = torch.stack([data[i][0] for i in range(len(data))])
    return not torch.equal(first, second)


@pytest.mark.parametrize("method", ["random", "dm"])
def test_memory_is_augmented_in_train_mode_only(method):
    """Real exemplars replay through the stream's train transforms (exp.dataset.subset), condensed
    images through DSA; in eval mode both are returned as stored."""
    bm = _augmented_stream()
    buffer = CondensedBuffer(8, **fast(method=method, iterations=2, matching={"dsa_strategy": "crop_scale_rotate"}))
    buffer.post_adapt(None, bm.train_stream[0])
    data = buffer.buffer
    assert _differs_between_reads(data)
    assert _differs_between_reads(bm.train_stream[0].dataset)  # the stream itself, for comparison
    evaluated = data.eval()
    assert not _differs_between_reads(evaluated)
    stored = torch.cat([buffer.groups[k].images for k in sorted(buffer.groups)])
    assert torch.equal(torch.stack([evaluated[i][0] for i in range(len(evaluated))]), stored)
    assert all(g.condensed == (method == "dm") for g in buffer.groups.values())


def test_memory_transform_none_and_custom():
    bm = blob_stream("class", experiences=1, classes=2)
    plain = CondensedBuffer(4, **fast(method="dm", iterations=1, memory_transform="none"))
    plain.post_adapt(None, bm.train_stream[0])
    assert not _differs_between_reads(plain.buffer)
    negate = CondensedBuffer(4, memory_transform=lambda x: -x, **fast(method="dm", iterations=1))
    negate.post_adapt(None, bm.train_stream[0])
    stored = torch.cat([negate.groups[k].images for k in sorted(negate.groups)])
    assert torch.equal(torch.stack([negate.buffer[i][0] for i in range(4)]), -stored)
    with pytest.raises(ValueError, match="unknown memory_transform 'flip'; allowed: auto, dsa, none"):
        CondensedBuffer(4, memory_transform="flip")


def test_default_budget_is_bounded_and_the_paper_one_argument_away():
    """The defaults are the documented CPU budget (DM, cpu-quick, 32-channel ConvNet; measured by
    examples/benchmark_split_mnist_default.py), not the paper's 1,000-20,000 iterations."""
    default = CondensedReplayConfig()
    run = default.resolved(10)
    assert (run.method, run.iterations, run.net) == ("dm", 200, "convnet-w32-d3-instance-relu-avg")
    paper = CondensedReplayConfig(preset="paper").resolved(10)
    assert (paper.iterations, paper.net) == (20000, "convnet")
    dc_paper = CondensedReplayConfig(method="dc", preset="paper").resolved(10)
    assert dc_paper.iterations == 1000 and dc_paper.matching.batch_real == 256
    assert CondensedReplayConfig(net="convnet-w8-d2").resolved(10).net == "convnet-w8-d2"


@pytest.mark.parametrize("method", ["random", "dm"])
def test_memory_concatenates_with_constant_task_labels(method):
    """Streams whose task labels are a ConstantSequence (as Avalanche's own generators make them):
    real exemplars of three tasks, and small classes beside condensed ones, form one dataset."""
    from avalanche.benchmarks import benchmark_from_datasets
    from avalanche.benchmarks.utils import DataAttribute, TaskAwareSupervisedClassificationDataset, TaskLabels
    from avalanche.benchmarks.utils.flat_data import ConstantSequence

    from dc_plugins.avalanche.items import MemoryItems

    def ds(task, small: bool):
        d = blob_domain(6, 2, seed=task)
        keep = torch.arange(12) if not small else torch.cat([torch.arange(6), torch.arange(6, 8)])
        x, y = d.images[keep], d.labels[keep].tolist()
        return TaskAwareSupervisedClassificationDataset(
            [MemoryItems(x, y, None)],
            data_attributes=[DataAttribute(y, "targets"), TaskLabels(ConstantSequence(task, len(y)))])

    bm = benchmark_from_datasets(train=[ds(t, t == 1) for t in range(3)], test=[ds(t, False) for t in range(3)])
    buffer = CondensedBuffer(18, **fast(method=method, iterations=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for exp in bm.train_stream:
            buffer.post_adapt(None, exp)
    data = buffer.buffer
    assert len(data) == 17 and sorted(set(data.targets_task_labels)) == [0, 1, 2]  # 3 per class, one has 2
    assert [data[i][2] for i in range(len(data))] == list(data.targets_task_labels)


@pytest.mark.parametrize("method", ["dm", "dc", "random", "herding"])
def test_checking_and_condensing_leave_the_global_generator_alone(method):
    """The learner's minibatch order (Avalanche shuffles with the global generator) must not
    depend on the memory: the checks before training and the condensation after it draw only
    from their own generators (before: the check's network and the DataLoader's base seed
    consumed global draws, so stage 1 differed between a condensed and a herding run)."""
    bm = blob_stream("class", experiences=1, classes=2)
    buffer = CondensedBuffer(4, **fast(method=method, iterations=1, matching={"init": "real"}))
    state = torch.get_rng_state()
    buffer.check_experience(bm.train_stream[0])
    assert torch.equal(torch.get_rng_state(), state)
    buffer.post_adapt(None, bm.train_stream[0])
    assert torch.equal(torch.get_rng_state(), state) and len(buffer) == 4


MTT_FAST = {"syn_steps": 3, "expert_epochs": 1, "max_start_epoch": 2, "num_experts": 1, "expert_train_epochs": 2,
            "expert_batch": 8, "batch_syn": 4}


def test_mtt_condenses_each_experience_with_experts_it_trains_and_caches(tmp_path):
    """method='mtt' like any other: the buffer trains the experience's experts, condenses from
    real images (every stored image moves), and with cache_dir keeps the experts beside the set."""
    bm = blob_stream("class", experiences=1, classes=3)
    real = torch.stack([bm.train_stream[0].dataset[i][0] for i in range(len(bm.train_stream[0].dataset))])
    kw = fast(method="mtt", iterations=2, cache_dir=str(tmp_path), trajectory=MTT_FAST, matching={"lr_img": 10.0})
    a = CondensedBuffer(9, **kw)
    a.post_adapt(None, bm.train_stream[0])
    assert a.class_counts() == {(0, c): 3 for c in range(3)}
    assert a.history[0]["method"] == "mtt" and a.history[0]["iterations"] == 2
    for group in a.groups.values():
        assert group.condensed and torch.cdist(group.images.flatten(1), real.flatten(1)).min() > 1e-4
    experts = list(tmp_path.glob("mtt-*.experts/expert_0000.pt"))
    assert len(experts) == 1
    b = CondensedBuffer(9, **kw)
    b.post_adapt(None, bm.train_stream[0])
    assert b.history[0]["cached"] and all(torch.equal(a.groups[k].images, b.groups[k].images) for k in a.groups)
    other = CondensedBuffer(9, **{**kw, "trajectory": {**MTT_FAST, "syn_steps": 4}})
    other.post_adapt(None, bm.train_stream[0])
    assert other.history[0]["cached"] is False


def test_mtt_default_budget_is_the_documented_cpu_one():
    run = CondensedReplayConfig(method="mtt").resolved(10)
    t = run.trajectory
    assert (run.iterations, t.num_experts, t.expert_train_epochs, t.syn_steps) == (50, 2, 6, 10)
    assert run.net == "convnet-w32-d3-instance-relu-avg"
    # the section is not part of the other methods' cache keys (their cached sets stay valid)
    from dc_plugins.avalanche.buffer import CondensedBuffer as CB
    buf = CB(10, **fast(method="dm", cache_dir="/tmp/x"))
    key = buf._cache_path(torch.zeros(2, 1, 8, 8), torch.zeros(2), 1, 0, buf.config.resolved(1))
    changed = CB(10, **fast(method="dm", cache_dir="/tmp/x", trajectory={"syn_steps": 7}))
    assert changed._cache_path(torch.zeros(2, 1, 8, 8), torch.zeros(2), 1, 0, changed.config.resolved(1)) == key


def test_selmatch_is_a_method_of_the_buffer_too():
    bm = blob_stream("class", experiences=1, classes=3)
    buffer = CondensedBuffer(9, **fast(method="selmatch", iterations=1, matching={"lr_img": 10.0},
                                       trajectory={**MTT_FAST, "selmatch": {"alpha": 0.0, "beta": 0.0,
                                                                           "score_epochs": 1}}))
    buffer.post_adapt(None, bm.train_stream[0])
    real = torch.stack([bm.train_stream[0].dataset[i][0] for i in range(len(bm.train_stream[0].dataset))])
    assert buffer.history[0]["method"] == "selmatch" and buffer.class_counts() == {(0, c): 3 for c in range(3)}
    for group in buffer.groups.values():  # alpha = 0: the selected real images themselves
        d = torch.cdist(group.images.flatten(1), real.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
        assert d.min(1).values.max() < 1e-5
