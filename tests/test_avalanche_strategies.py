"""strategies/: E2E factory, balanced fine-tuning, learner-herding, the continual runner, and the example."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from tests.examples_util import load_example
from tests.avalanche_util import TINY_NET, blob_stream, one_thread, quiet_evaluator, tiny_learner  # noqa: F401

from avalanche.training.plugins import LwFPlugin, ReplayPlugin, SupervisedPlugin  # noqa: E402
from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer  # noqa: E402

from dc_plugins.avalanche import CondensedReplayConfig, CondensedReplayPlugin  # noqa: E402
from strategies import (BalancedFinetuningPlugin, E2EConfig, LearnerHerdingBuffer, learner_herding_buffer,  # noqa: E402
                        make_e2e_strategy)
from strategies import continual  # noqa: E402
from strategies.models import MultiHeadConvNet, make_learner  # noqa: E402

CONDENSED = CondensedReplayConfig(method="dm", iterations=2, net=TINY_NET, preset="cpu-quick", progress=False)


def small(**kw) -> E2EConfig:
    base = dict(mem_size=24, ipc=4, epochs=1, batch=16, finetune_epochs=2, lr=0.05)
    base.update(kw)
    return E2EConfig(**base)


def test_factory_puts_the_plugins_in_e2e_order():
    s = make_e2e_strategy(tiny_learner(6), small(memory="condensed", distillation=True, balanced_finetuning=True),
                          condensed=CONDENSED, evaluator=quiet_evaluator())
    kinds = [type(p) for p in s.plugins[:3]]
    assert kinds == [CondensedReplayPlugin, BalancedFinetuningPlugin, LwFPlugin]
    assert s.plugins[0].storage_policy.config.ipc == 4 and s.plugins[0].mem_size == 24

    s = make_e2e_strategy(tiny_learner(6), small(memory="learner-herding", distillation=False),
                          evaluator=quiet_evaluator())
    assert type(s.plugins[0]) is ReplayPlugin and isinstance(s.plugins[0].storage_policy, LearnerHerdingBuffer)
    assert isinstance(s.plugins[0].storage_policy, ParametricBuffer)  # Avalanche's, subclassed
    assert not any(isinstance(p, LwFPlugin) for p in s.plugins)

    s = make_e2e_strategy(tiny_learner(6), small(memory="none"), evaluator=quiet_evaluator())
    assert not any(isinstance(p, (ReplayPlugin, BalancedFinetuningPlugin)) for p in s.plugins)


@pytest.mark.parametrize("bad, match", [
    (dict(memory="reservoir"), "unknown memory 'reservoir'; allowed: none, learner-herding, class-balanced-random, condensed"),
    (dict(memory="herding"), "'herding' names two baselines: use 'learner-herding' .* or 'reference-herding'"),
    (dict(memory="none", balanced_finetuning=True), r"needs a memory \(learner-herding, class-balanced-random or condensed\)"),
    (dict(epochs=0), "epochs must be positive"),
])
def test_e2e_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        small(**bad)


class ParamSnapshot(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.snapshots: list[list[torch.Tensor]] = []

    def after_training_exp(self, strategy, **kwargs):
        self.snapshots.append([p.detach().clone() for p in strategy.model.parameters()])


def test_balanced_finetuning_trains_on_the_memory_from_the_second_experience():
    bm = blob_stream("class", experiences=3, classes=2)
    model = tiny_learner(6)
    cfg = small(memory="condensed", distillation=True, balanced_finetuning=True)
    before, after = ParamSnapshot(), ParamSnapshot()
    s = make_e2e_strategy(model, cfg, condensed=CONDENSED, evaluator=quiet_evaluator())
    # snapshot around the fine-tuning plugin: replay, [before], fine-tuning, [after], LwF
    s.plugins[1:2] = [before, s.plugins[1], after]
    for exp in bm.train_stream:
        s.train(exp)
    bft = s.plugins[2]
    assert bft.finetuned_experiences == [1, 2]
    same = [all(torch.equal(a, b) for a, b in zip(x, y)) for x, y in zip(before.snapshots, after.snapshots)]
    assert same == [True, False, False]
    # LwF's teacher is the fine-tuned model
    lwf = s.plugins[4].lwf
    assert all(torch.equal(a, b) for a, b in zip(lwf.prev_model.parameters(), after.snapshots[-1]))


def test_learner_herding_keeps_real_exemplars_per_class():
    bm = blob_stream("class", experiences=2, classes=2)
    model = tiny_learner(4)
    buffer = learner_herding_buffer(model, 40, ipc=5)
    assert isinstance(buffer.selection_strategy, HerdingSelectionStrategy)
    s = make_e2e_strategy(model, small(memory="learner-herding", mem_size=40, ipc=5, distillation=False),
                          evaluator=quiet_evaluator())
    for exp in bm.train_stream:
        s.train(exp)
    memory = s.plugins[0].storage_policy.buffer
    targets = list(memory.targets)
    assert sorted(targets.count(c) for c in range(4)) == [5, 5, 5, 5]  # fixed 5 per class
    real = torch.stack([e.dataset[i][0] for e in bm.train_stream for i in range(len(e.dataset))]).flatten(1)
    for i in range(len(memory)):
        assert (real == memory[i][0].flatten()).all(1).any()  # exactly one of the real images
    with pytest.raises(ValueError, match="no module 'backbone'"):
        learner_herding_buffer(model, 40, layer_name="backbone")
    with pytest.raises(ValueError, match="ipc must be an integer in 1..mem_size=40 or None, got 41"):
        learner_herding_buffer(model, 40, ipc=41)


def _herd(scenario: str, mem_size: int, ipc: int | None, experiences: int = 2):
    bm = blob_stream(scenario, experiences=experiences, classes=2)
    model = tiny_learner(2 if scenario in ("domain", "task") else 2 * experiences)
    s = make_e2e_strategy(model, small(memory="learner-herding", mem_size=mem_size, ipc=ipc, distillation=False),
                          evaluator=quiet_evaluator())
    for exp in bm.train_stream:
        s.train(exp)
    return bm, s.plugins[0].storage_policy


def test_learner_herding_keeps_exactly_ipc_not_mem_size_over_its_groups():
    # Avalanche's fixed-group mode kept mem_size // (mem_size // ipc) = 24 // 4 = 6 per class here
    _, buffer = _herd("class", mem_size=24, ipc=5)
    assert sorted(buffer.class_counts().values()) == [5, 5, 5, 5] and len(buffer.buffer) == 20
    # more groups than mem_size // ipc: the equal share (every slot used), never above mem_size
    with pytest.warns(UserWarning, match="ipc=4 for 4 groups needs 16 images, more than mem_size=10"):
        _, buffer = _herd("class", mem_size=10, ipc=4)
    assert sorted(buffer.class_counts().values()) == [2, 2, 3, 3] and len(buffer.buffer) == 10
    _, buffer = _herd("class", mem_size=23, ipc=None)  # Avalanche's adaptive share, as before
    assert sorted(buffer.class_counts().values()) == [5, 6, 6, 6]


def test_learner_herding_groups_a_digit_of_each_domain_apart():
    # domain-incremental: the same two labels in both experiences; as the condensed buffer, each
    # (experience, class) is a group that keeps its own exemplars, herded from its own domain
    bm, buffer = _herd("domain", mem_size=40, ipc=3)
    assert sorted(buffer.buffer_groups) == [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1)]
    assert buffer.class_counts() == {(0, 0): 6, (0, 1): 6}
    for (e, _, c), group in buffer.buffer_groups.items():
        real = torch.stack([x for x, y, *_ in bm.train_stream[e].dataset if y == c]).flatten(1)
        for x, y, *_ in group.buffer:
            assert y == c and (real == x.flatten()).all(1).any()
    # task-incremental: labels restart at 0 in each task, and each task's classes are their own groups
    _, buffer = _herd("task", mem_size=40, ipc=3)
    assert sorted(buffer.buffer_groups) == [(0, 0, 0), (0, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert buffer.class_counts() == {(0, 0): 3, (0, 1): 3, (1, 0): 3, (1, 1): 3}


def test_multi_head_learner_in_a_task_incremental_stream():
    bm = blob_stream("task", experiences=2, classes=2)
    model = make_learner(TINY_NET, channels=1, image_size=8, num_classes=2, multi_head=True,
                         generator=torch.Generator().manual_seed(0))
    assert isinstance(model, MultiHeadConvNet)
    s = make_e2e_strategy(model, small(memory="condensed", mem_size=16, distillation=True), condensed=CONDENSED,
                          evaluator=quiet_evaluator())
    for exp in bm.train_stream:
        s.train(exp)
    assert set(s.plugins[0].buffer.class_counts()) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    out = model(torch.zeros(3, 1, 8, 8), torch.tensor([0, 1, 1]))
    assert out.shape == (3, 2)


TINY = ["stream=digits", "digits_experiences=2", "image_size=8", "channels=1", f"net={TINY_NET}",
        "train={mem_size: 20, ipc: 2, epochs: 1, batch: 64, balanced_finetuning: false}",
        f"condense={{iterations: 1, preset: cpu-quick, net: {TINY_NET}}}", "device=cpu"]


def tiny_argv(out, *sets: str) -> list[str]:
    return [item for s in TINY + list(sets) for item in ("--set", s)] + ["--out", str(out), "--no-progress"]


def test_runner_writes_the_table_csv_and_plot_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    argv = tiny_argv(out, "memories=[none, dm]", "distillation=[false]", "seeds=[0, 1]")
    rows = continual.main(argv)
    for name in ("table.md", "table.csv", "results.csv", "accuracy.png", "config.json"):
        assert (out / name).is_file(), name
    assert [(r["memory"], r["distillation"], r["seeds"]) for r in rows] == [("dm", False, 2), ("none", False, 2)]
    with open(out / "results.csv") as f:
        results = list(csv.DictReader(f))
    assert len(results) == 2 * 2 * 2  # memories x seeds x stages
    for r in results:
        accs = [float(a) for a in r["accuracies"].split()]
        assert len(accs) == int(r["stage"]) and abs(sum(accs) / len(accs) - float(r["mean_seen"])) < 1e-5
    table = (out / "table.md").read_text()
    assert "| dm | no | 2 |" in table and "±" in table and "forgetting" in table.splitlines()[0]
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    again = continual.main(argv)  # finished runs of the same configuration are reused, not rerun
    assert capsys.readouterr().out.count("done earlier with this configuration") == 4 and again == rows


def test_runner_records_avalanches_forgetting_per_stage(tmp_path):
    cfg = continual.load_config(None, sets=TINY + ["memories=[none]", "distillation=[false]", "seeds=[0]",
                                                   "train.epochs=5", f"out={tmp_path}"])
    continual.run_continual(cfg, progress=False, log=lambda line: None)
    result = json.loads((tmp_path / "runs" / "none-nokd-s0" / "result.json").read_text())
    first, last = result["stages"]
    assert first["forgetting"] == [] and first["stream_forgetting"] == 0.0
    # Avalanche's forgetting of experience 0: its accuracy after stage 1 minus its accuracy now
    assert last["forgetting"] == [pytest.approx(first["accuracies"][0] - last["accuracies"][0])]
    assert last["stream_forgetting"] == pytest.approx(last["forgetting"][0])
    assert last["stream_forgetting"] > 0.5  # no replay on a class-incremental stream: it forgets


def test_a_runs_result_does_not_depend_on_the_runs_before_it(tmp_path):
    grid = ["memories=[none]", "distillation=[false]"]
    continual.main(tiny_argv(tmp_path / "both", *grid, "seeds=[0, 1]"))
    continual.main(tiny_argv(tmp_path / "alone", *grid, "seeds=[1]"))
    both, alone = (json.loads((tmp_path / d / "runs" / "none-nokd-s1" / "result.json").read_text())
                   for d in ("both", "alone"))
    assert [s["accuracies"] for s in both["stages"]] == [s["accuracies"] for s in alone["stages"]]


def test_runner_refuses_a_run_folder_of_another_configuration(tmp_path):
    out = tmp_path / "out"
    grid = ["memories=[none]", "distillation=[false]", "seeds=[0]"]
    continual.main(tiny_argv(out, *grid))
    result_file = out / "runs" / "none-nokd-s0" / "result.json"
    result = json.loads(result_file.read_text())
    config = json.loads((out / "config.json").read_text())
    assert result["config_hash"] == continual.config_hash(result["config"])
    assert config["runs"] == {"none-nokd-s0": result["config_hash"]} and config["data"] == result["config"]["data"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(continual.ConfigMismatchError,
                       match=r"none-nokd-s0 is a run of another configuration \(train\.epochs: 1 -> 2, "
                             r"train\.lr: 0\.01 -> 0\.05\); choose another out"):
        continual.main(tiny_argv(out, *grid, "train.epochs=2", "train.lr=0.05"))
    with pytest.raises(continual.ConfigMismatchError, match=r"\(data: [0-9a-f]{16} -> [0-9a-f]{16}, "
                                                            r"image_size: 8 -> 10\)"):
        continual.main(tiny_argv(out, *grid, "image_size=10"))
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # refused before anything was written: the table is the old run's
    # where and how it ran is not the configuration: another root, threads or a moved folder reuse the run
    moved = tmp_path / "moved"
    out.rename(moved)
    continual.main(tiny_argv(moved, *grid, "root=elsewhere", "threads=1"))
    assert json.loads((moved / "runs" / "none-nokd-s0" / "result.json").read_text()) == result
    # a result without a hash (an older version's) is not trusted
    del result["config_hash"]
    (moved / "runs" / "none-nokd-s0" / "result.json").write_text(json.dumps(result))
    with pytest.raises(continual.ConfigMismatchError, match="has no configuration hash"):
        continual.main(tiny_argv(moved, *grid))


def test_resolved_run_holds_what_changes_the_result_and_nothing_else():
    cfg = continual.load_config(None, sets=TINY)
    base = continual.resolved_run(cfg, "dc", True, 0, "abc")
    assert base["condense"]["method"] == "dc" and base["condense"]["seed"] == 0
    assert base["condense"]["resolved"]["iterations"] == 1 and base["train"]["memory"] == "condensed"
    assert not {"root", "device", "threads", "out", "memories", "seeds"} & set(base)
    assert "progress" not in base["condense"] and "cache_dir" not in base["condense"]
    moved = continual.load_config(None, sets=TINY + ["root=/x", "device=cuda", "out=/y", "seeds=[5]",
                                                     "condense.progress=false", "condense.cache_dir=/z"])
    assert continual.resolved_run(moved, "dc", True, 0, "abc") == base
    herd = continual.resolved_run(cfg, "reference-herding", True, 0, "abc")
    assert herd["condense"]["method"] == "herding" and herd["memory"] == "reference-herding"
    # learner-herding has no condensed memory: the condense section does not change its result
    learner = continual.resolved_run(cfg, "learner-herding", True, 0, "abc")
    assert learner["condense"] is None and learner["train"]["memory"] == "learner-herding"
    other = continual.load_config(None, sets=TINY + ["condense.iterations=3"])
    assert continual.resolved_run(other, "learner-herding", True, 0, "abc") == learner
    assert continual.config_diff(base, continual.resolved_run(other, "dc", True, 0, "abc")) == [
        "condense.iterations: 1 -> 3", "condense.resolved.iterations: 1 -> 3"]


def test_runner_config_errors_name_the_key():
    with pytest.raises(KeyError, match="unknown config key 'epoch'"):
        continual.load_config(None, sets=["epoch=3"])
    with pytest.raises(KeyError, match="unknown config key 'train.epoch'"):
        continual.load_config(None, sets=["train.epoch=3"])
    with pytest.raises(ValueError, match="memories \\['icarl'\\] not allowed"):
        continual.load_config(None, sets=["memories=[icarl]"])
    with pytest.raises(ValueError, match="^memory 'herding' names two baselines: use 'learner-herding' .* or "
                                         "'reference-herding' \\(the condensed buffer's method 'herding'"):
        continual.load_config(None, sets=["memories=[herding, dc]"])
    cfg = continual.load_config("continual_digits", offline=True)
    assert (cfg.stream, cfg.image_size, cfg.train.epochs, cfg.condense.iterations) == ("mnist-usps-digits", 16, 5, 10)
    assert cfg.memories == ["learner-herding", "dc"]
    assert isinstance(cfg.train, E2EConfig) and isinstance(cfg.condense, CondensedReplayConfig)


def test_example_script_runs_the_library_runner(tmp_path, capsys):
    example = load_example("continual_digits.py")
    grid = ["memories=[none]", "distillation=[true]", "seeds=[0]"]
    assert example.main(tiny_argv(tmp_path, *grid)) == 0
    assert "| none | yes | 1 |" in capsys.readouterr().out
    assert (tmp_path / "runs" / "none-kd-s0" / "result.json").is_file()
    # input errors are one line and exit status 2, as dc-nas
    assert example.main(tiny_argv(tmp_path, *grid, "train.epochs=3")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("continual_digits: error: ") and "train.epochs: 1 -> 3" in err
    assert example.main(["--set", "memories=[herding]"]) == 2
    assert "names two baselines" in capsys.readouterr().err
