"""Class-incremental split streams (Avalanche's split-CIFAR-10 shape) on generated images, the
memories' items on them, and the shipped CIFAR-10-JPEG config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.avalanche_util import TINY_NET, blob_domain, one_thread  # noqa: F401

from avalanche.training.storage_policy import ClassBalancedBuffer  # noqa: E402

from dc_plugins.avalanche import CondensedBuffer, CondensedReplayConfig  # noqa: E402
from dc_plugins.avalanche.items import item_signature  # noqa: E402
from dc_plugins.avalanche.streams import class_order_for_seed, class_split_stream  # noqa: E402
from dc_plugins.avalanche.transforms import make_learner_transform  # noqa: E402
from strategies import continual  # noqa: E402


def split_data(per_class: int = 6, test_per_class: int = 3, classes: int = 10, size: int = 8):
    full = blob_domain(per_class + test_per_class, classes, channels=3, size=size, seed=0)
    is_test = (torch.arange(len(full)) % (per_class + test_per_class)) >= per_class
    idx = torch.arange(len(full))
    return full.subset(idx[~is_test]), full.subset(idx[is_test])


def test_split_stream_has_five_experiences_of_two_classes_in_the_seeds_order():
    train, test = split_data()
    bm = class_split_stream(train, test, 5, seed=3)
    order = class_order_for_seed(10, 3)
    assert bm.class_order == order and sorted(order) == list(range(10)) and order != list(range(10))
    assert [e.classes_in_this_experience for e in bm.train_stream] == [sorted(order[2 * i:2 * i + 2]) for i in range(5)]
    assert [e.classes_in_this_experience for e in bm.test_stream] == [e.classes_in_this_experience for e in bm.train_stream]
    assert [len(e.dataset) for e in bm.train_stream] == [12] * 5 and [len(e.dataset) for e in bm.test_stream] == [6] * 5
    assert bm.n_classes == 10
    for exp in bm.train_stream:  # labels keep their ids; items (Tensor, int, int) with task label 0
        x, y, t = exp.dataset[0]
        assert x.shape == (3, 8, 8) and isinstance(y, int) and t == 0 and y in exp.classes_in_this_experience
        assert set(int(v) for v in exp.dataset.targets) == set(exp.classes_in_this_experience)
    assert class_split_stream(train, test, 5, seed=3).class_order == order  # fixed per seed
    assert class_split_stream(train, test, 5, seed=4).class_order != order
    fixed = class_split_stream(train, test, 2, class_order=list(range(9, -1, -1)))
    assert [e.classes_in_this_experience for e in fixed.train_stream] == [[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]]


def test_split_stream_rejects_bad_shapes_of_split():
    train, test = split_data()
    with pytest.raises(ValueError, match="n_experiences must divide the 10 classes; allowed: 1, 2, 5, 10, got 3"):
        class_split_stream(train, test, 3)
    with pytest.raises(ValueError, match="class_order must list each of the classes 0..9 once"):
        class_split_stream(train, test, 5, class_order=[0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
    with pytest.raises(ValueError, match="different classes"):
        class_split_stream(train, test.subset(torch.nonzero(test.labels < 9).flatten()), 5)


def test_learner_crop_flip_augments_training_items_only():
    train, test = split_data()
    bm = class_split_stream(train, test, 5, seed=0, train_transform=make_learner_transform("crop-flip", 8))
    data = bm.train_stream[0].dataset
    stored = train.images[train.labels == bm.train_stream[0].classes_in_this_experience[0]][0]
    torch.manual_seed(0)
    views = [data.train()[0][0] for _ in range(8)]
    assert any(not torch.equal(v, stored) for v in views) and all(v.shape == stored.shape for v in views)
    assert torch.equal(data.eval()[0][0], stored) and torch.equal(bm.test_stream[0].dataset[0][0],
                                                                  test.images[test.labels == bm.test_stream[0].classes_in_this_experience[0]][0])
    with pytest.raises(ValueError, match="unknown learner augmentation 'mixup'; allowed: none, crop-flip"):
        make_learner_transform("mixup", 8)


class _Agent:
    device = torch.device("cpu")
    eval_mb_size = 64

    def __init__(self, model, exp):
        self.model, self.experience = model, exp


def test_memories_replay_items_shaped_like_the_split_streams():
    from strategies.herding import LearnerHerdingBuffer
    from strategies.models import make_learner

    train, test = split_data()
    bm = class_split_stream(train, test, 5, seed=0, train_transform=make_learner_transform("crop-flip", 8))
    exp = bm.train_stream[0]
    want = item_signature(exp.dataset[0])
    model = make_learner(TINY_NET, channels=3, image_size=8, num_classes=10, generator=torch.Generator().manual_seed(0))
    agent = _Agent(model, exp)
    random_memory = ClassBalancedBuffer(20, adaptive_size=False, total_num_classes=10)
    random_memory.post_adapt(agent, exp)
    condensed = CondensedBuffer(20, CondensedReplayConfig(method="dm", ipc=2, iterations=1, net=TINY_NET, flip=True,
                                                          progress=False))
    condensed.post_adapt(agent, exp)
    herding = [LearnerHerdingBuffer(model, 20, ipc=2) for _ in range(2)]
    for seed, h in enumerate(herding):
        torch.manual_seed(seed)  # other crops per call: would change the features if taken in train mode
        h.post_adapt(agent, exp)
    for memory in (random_memory, condensed, herding[0]):
        items = memory.buffer
        assert len(items) == 4 and sorted(int(v) for v in items.targets) == sorted(exp.classes_in_this_experience * 2)
        assert item_signature(items[0]) == want
    # herding features come from the eval view: the same exemplars whatever the train-time crops
    picked = [sorted(h.buffer.eval()[i][0].sum().item() for i in range(4)) for h in herding]
    assert picked[0] == picked[1]


@pytest.fixture
def tiny_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (10, 8, 8, 3))
    for split, n in (("train", 4), ("test", 2)):
        for c in range(10):
            for i in range(n):
                pixels = np.clip(protos[c] + rng.normal(0, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
                path = tmp_path / "folder" / split / f"class{c}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
    return tmp_path / "folder"


def tiny_split_settings(folder, out, *, seeds: list[int]) -> list[str]:
    """``--set`` items of a split-CIFAR-shaped run on ``folder`` (random and DM memories, no
    distillation, one epoch, DM at one iteration)."""
    return ["stream=split", f"root={folder}", "image_size=8", "learner_augment=crop-flip", f"net={TINY_NET}",
            "memories=[class-balanced-random, dm]", "distillation=[false]", f"seeds={seeds}", "device=cpu",
            "train={mem_size: 20, ipc: 2, epochs: 1, batch: 16, balanced_finetuning: false}",
            f"condense={{preset: cpu-quick, net: {TINY_NET}, flip: true, progress: false}}",
            "condense_per_method={dm: {iterations: 1}}", f"out={out}"]


def test_runner_builds_one_split_stream_per_seed_from_an_image_folder(tiny_folder, tmp_path):
    sets = tiny_split_settings(tiny_folder, tmp_path / "out", seeds=[0, 1])
    cfg = continual.load_config(None, sets=sets)
    rows = continual.run_continual(cfg, progress=False, log=lambda line: None)
    assert {(r["memory"], r["seeds"]) for r in rows} == {("class-balanced-random", 2), ("dm", 2)}
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert set(config["data"]) == {"0", "1"} and config["data"]["0"] != config["data"]["1"]  # two class orders
    for seed in (0, 1):
        result = json.loads((tmp_path / "out" / "runs" / f"dm-nokd-s{seed}" / "result.json").read_text())
        assert len(result["stages"]) == 5 and result["config"]["data"] == config["data"][str(seed)]
        assert result["memory_size"] == 20 and result["config"]["condense"]["iterations"] == 1
        assert result["config"]["learner_augment"] == "crop-flip"
        first = [h["classes"] for h in result["condensation"]][0]
        assert sorted(first) == sorted(class_order_for_seed(10, seed)[:2])
        random_run = json.loads((tmp_path / "out" / "runs" / f"class-balanced-random-nokd-s{seed}" / "result.json"
                                 ).read_text())
        assert random_run["memory_size"] == 20 and random_run["config"]["condense"] is None
    for name in ("table.md", "table.csv", "results.csv", "accuracy.png"):
        assert (tmp_path / "out" / name).is_file()


def test_shipped_cifar10_jpeg_config_loads_with_its_budget():
    cfg = continual.load_config("continual_cifar10_jpeg")
    assert (cfg.stream, cfg.dataset, cfg.experiences, cfg.class_order, cfg.learner_augment) == (
        "split", "imagefolder", 5, None, "crop-flip")
    assert cfg.memories == ["learner-herding", "class-balanced-random", "dm", "dc"]
    assert (cfg.train.mem_size, cfg.train.ipc, cfg.seeds, cfg.distillation) == (100, 10, [0, 1, 2], [False, True])
    dm = continual.resolved_run(cfg, "dm", False, 0, "abc")["condense"]
    dc = continual.resolved_run(cfg, "dc", False, 0, "abc")["condense"]
    assert (dm["method"], dm["iterations"], dm["flip"]) == ("dm", 200, True)
    assert dm["resolved"]["matching"]["batch_real"] == 256 and dc["resolved"]["matching"]["batch_real"] == 64
    assert (dc["method"], dc["iterations"], dc["resolved"]["matching"]["inner_loop"]) == ("dc", 5, 5)
    with pytest.raises(ValueError, match="condense_per_method: 'learner-herding' is not a condensed memory"):
        continual.load_config("continual_cifar10_jpeg", sets=["condense_per_method={learner-herding: {iterations: 1}}"])
    with pytest.raises(KeyError, match="condense_per_method.dm: unknown config key 'iters'"):
        continual.load_config("continual_cifar10_jpeg", sets=["condense_per_method={dm: {iters: 1}}"])
    with pytest.raises(ValueError, match="stream 'split' is class-incremental"):
        continual.load_config("continual_cifar10_jpeg", sets=["scenario=task"])


def test_memory_probe_trains_fresh_learners_on_each_final_memory(tiny_folder, tmp_path):
    # Every run keeps its final memory (runs/ only); the probe trains fresh learners on it alone,
    # tests them on all test classes, reuses a probe of the same settings and memory, and redoes
    # it when a setting changes.
    sets = tiny_split_settings(tiny_folder, tmp_path / "out", seeds=[0])
    cfg = continual.load_config(None, sets=sets)
    continual.run_continual(cfg, progress=False, log=lambda line: None, probe_epochs=2, probe_networks=2)
    out = tmp_path / "out"
    for name in ("class-balanced-random-nokd-s0", "dm-nokd-s0"):
        memory = torch.load(out / "runs" / name / "memory.pt", weights_only=True)
        assert memory["images"].shape == (20, 3, 8, 8) and sorted(memory["labels"].unique().tolist()) == list(range(10))
        probe = json.loads((out / "runs" / name / "probe.json").read_text())
        assert len(probe["accuracies"]) == 2 and all(0.0 <= a <= 1.0 for a in probe["accuracies"])
        assert probe["memory_images"] == 20 and probe["settings"]["epochs"] == 2
    text = (out / "probe.md").read_text()
    assert "| dm | no | 1 |" in text and "| class-balanced-random | no | 1 |" in text
    first = (out / "runs" / "dm-nokd-s0" / "probe.json").stat().st_mtime_ns
    continual.run_continual(cfg, progress=False, log=lambda line: None, probe_epochs=2, probe_networks=2)
    assert (out / "runs" / "dm-nokd-s0" / "probe.json").stat().st_mtime_ns == first  # reused
    continual.run_continual(cfg, progress=False, log=lambda line: None, probe_epochs=3, probe_networks=2)
    assert json.loads((out / "runs" / "dm-nokd-s0" / "probe.json").read_text())["settings"]["epochs"] == 3
    (out / "runs" / "dm-nokd-s0" / "memory.pt").unlink()
    continual.run_continual(cfg, progress=False, log=lambda line: None, probe_epochs=3, probe_networks=2)
    assert "Not probed" in (out / "probe.md").read_text() and "dm-nokd-s0" in (out / "probe.md").read_text()
