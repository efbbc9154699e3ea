"""Grid experiments under NNI's sequential engine: every trial returned, failures reported,
finished trials skipped on rerun; the whole dc-nas pipeline and its config on a tiny space."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("nni")

from nas.cli import main  # noqa: E402
from nas.config import NasConfig, apply_values, load_config, parse_assignment  # noqa: E402
from nas.data import load_split  # noqa: E402
from nas.evaluator import evaluate_architecture  # noqa: E402
from nas.experiment import _experiment_config, run_nas, run_proxy_experiment, select_archs  # noqa: E402
from nas.proxy import ProxyProvider  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*is found to be not a nn.Module")

TINY = {
    "device": "cpu",
    "progress": False,
    "proxies": ["whole", "random"],
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "space": {"widths": [4, 8], "depths": [1, 2], "norms": ["none", "instance"], "activations": ["relu"],
              "poolings": ["avg"], "max_archs": 5, "seed": 0},
    "proxy": {"ipc": 3, "preset": "cpu-quick"},
    "train": {"epochs": 3, "whole_epochs": 1, "batch": 128, "report_every": 1},
    "score": {"top_k": ["3", "50%"], "plot": True},
}


def tiny_config(tmp_path, **changes) -> NasConfig:
    cfg = apply_values(NasConfig(), json.loads(json.dumps(TINY)))
    cfg.out = str(tmp_path / "out")
    return apply_values(cfg, changes).validate()


FAIL_ARCH = "w4-d2-instance-relu-avg"


def failing_for_one_arch(model, **kwargs):
    """The real trial, with a learning rate that diverges on one architecture (module level:
    NNI imports trial functions by name)."""
    if model.spec.arch == FAIL_ARCH:
        kwargs["train"] = dict(kwargs["train"], lr=float("nan"))
    return evaluate_architecture(model, **kwargs)


def crashing_for_one_arch(model, **kwargs):
    """A trial that dies before the trial function can write its record."""
    if model.spec.arch == FAIL_ARCH:
        raise RuntimeError("simulated crash")
    return evaluate_architecture(model, **kwargs)


def test_grid_experiment_returns_every_trial_and_reports_failures(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    split = load_split(cfg.data)
    archs = select_archs(cfg)
    assert len(archs) == 5 and FAIL_ARCH in archs
    proxy = ProxyProvider(split, cfg.proxy, tmp_path / "cache", progress=False).get("random")
    run = run_proxy_experiment(archs, proxy, split, cfg, out=tmp_path / "out", function=failing_for_one_arch)
    assert list(run.records) == archs                           # every trial, in grid order
    assert run.failed == [FAIL_ARCH]                              # reported, and the grid went on
    assert "NonFiniteLossError" in run.records[FAIL_ARCH].error
    assert len(run.finished) == 4 and all(0 <= a <= 1 for a in run.finished.values())
    assert run.experiment_id is not None
    assert all(len(r.intermediate) == 2 for a, r in run.records.items() if a != FAIL_ARCH)

    # Rerun: finished trials are skipped, the failed one is retried (now with the real trial);
    # the progress bar starts at the 4 finished architectures and ends at 5.
    cfg.progress = True
    capsys.readouterr()
    again = run_proxy_experiment(archs, proxy, split, cfg, out=tmp_path / "out")
    assert sorted(again.skipped) == sorted(a for a in archs if a != FAIL_ARCH)
    assert again.failed == [] and len(again.finished) == 5
    err = capsys.readouterr().err
    assert "proxy random" in err and "4/5" in err and "5/5" in err
    assert again.records[archs[0]].accuracy == run.records[archs[0]].accuracy

    # Everything finished: no NNI experiment at all.
    third = run_proxy_experiment(archs, proxy, split, cfg, out=tmp_path / "out")
    assert third.experiment_id is None and len(third.skipped) == 5


def test_trial_dying_without_a_record_is_reported_from_nni_status(tmp_path):
    cfg = tiny_config(tmp_path)
    split = load_split(cfg.data)
    proxy = ProxyProvider(split, cfg.proxy, tmp_path / "cache", progress=False).get("random")
    archs = select_archs(cfg)
    run = run_proxy_experiment(archs, proxy, split, cfg, out=tmp_path / "out", function=crashing_for_one_arch)
    assert run.failed == [FAIL_ARCH] and len(run.finished) == 4
    assert "NNI reports the trial as failed" in run.records[FAIL_ARCH].error


def test_run_nas_writes_results_scores_and_plot(tmp_path):
    cfg = tiny_config(tmp_path)
    results = run_nas(cfg)
    out = tmp_path / "out"
    assert set(results.runs) == {"whole", "random"}
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["proxies"]["random"]["trials"]) == 5
    assert (out / "results.csv").read_text().count("\n") == 1 + 2 * 5
    rows = {r["proxy"]: r for r in results.scores}
    assert rows["whole"]["spearman_all"] == pytest.approx(1.0)
    assert set(rows["random"]["spearman_top"]) == {"3", "50%"}
    assert (out / "scores.md").read_text().startswith("| proxy |")
    # Each run's own top-k (the largest k: 50 % of 5 = 3) broken down by design choice.
    assert [r["k"] for r in payload["choices"]] == [3, 3]
    assert sum(payload["choices"][1]["choices"]["pooling"].values()) == 3
    assert "Design choices in each run's own top 3" in (out / "scores.md").read_text()
    assert (out / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    # The CLI re-scores saved results with other k values.
    assert main(["score", "--config", str(out / "config.json").replace(".json", ".yaml")]) == 2  # no such file
    assert main(["score", "--out", str(out), "--top-k", "2,4"]) == 0
    assert "Spearman top-2" in (out / "scores.md").read_text()
    assert "Design choices in each run's own top 4" in (out / "scores.md").read_text()


def test_changing_one_training_budget_retrains_only_the_proxies_it_concerns(tmp_path):
    cfg = tiny_config(tmp_path, proxies=["whole", "random"])
    run_nas(cfg)
    # A longer reference: the whole-set trials run again, the random proxy's are reused.
    longer_reference = run_nas(tiny_config(tmp_path, train={"whole_epochs": 2}))
    assert longer_reference.runs["random"].skipped and not longer_reference.runs["whole"].skipped
    assert len(longer_reference.runs["whole"].finished) == 5
    # A longer proxy training: the other way round.
    longer_proxy = run_nas(tiny_config(tmp_path, train={"whole_epochs": 2, "epochs": 4}))
    assert len(longer_proxy.runs["whole"].skipped) == 5 and not longer_proxy.runs["random"].skipped
    # Reporting less often changes no training: everything is reused.
    sparser = run_nas(tiny_config(tmp_path, train={"whole_epochs": 2, "epochs": 4, "report_every": 2}))
    assert all(len(run.skipped) == 5 for run in sparser.runs.values())


def test_proxy_augment_trains_only_the_proxies_with_it(tmp_path, monkeypatch):
    import nas.evaluator as evaluator

    plain = run_nas(tiny_config(tmp_path, proxies=["whole", "random"]))
    used = []
    real_augment = evaluator.evaluation_augment
    monkeypatch.setattr(evaluator, "evaluation_augment",
                        lambda kind, *args: used.append(kind) or real_augment(kind, *args))
    augmented = run_nas(tiny_config(tmp_path, proxies=["whole", "random"], train={"proxy_augment": "dc"}))
    # The reference is reused untouched; the proxy retrains, with DC augmentation, to other results.
    assert len(augmented.runs["whole"].skipped) == 5 and not augmented.runs["random"].skipped
    assert used == ["dc"] * 5
    assert augmented.runs["random"].finished != plain.runs["random"].finished
    # Naming the reference's own augmentation is the same training as leaving it unset.
    same = run_nas(tiny_config(tmp_path, proxies=["whole", "random"], train={"proxy_augment": "none"}))
    assert len(same.runs["random"].skipped) == 5
    assert same.runs["random"].finished == plain.runs["random"].finished
    with pytest.raises(ValueError, match="train.proxy_augment must be none, dc or dsa .* got 'flip'"):
        tiny_config(tmp_path, train={"proxy_augment": "flip"})


def test_repeated_trainings_add_a_seed_to_seed_table(tmp_path):
    cfg = tiny_config(tmp_path, train={"repeats": 2})
    results = run_nas(cfg)
    out = tmp_path / "out"
    assert [r["proxy"] for r in results.agreement] == ["whole", "random"]
    assert all(r["n"] == 5 and set(r["spearman_top"]) == {"3", "50%"} for r in results.agreement)
    assert json.loads((out / "results.json").read_text())["agreement"][0]["proxy"] == "whole"
    assert "Seed-to-seed agreement" in (out / "scores.md").read_text()
    # Re-scoring recomputes it from the saved per-seed accuracies.
    assert main(["score", "--out", str(out), "--top-k", "2"]) == 0
    assert "top-2 (k=2)" in (out / "scores.md").read_text().split("Seed-to-seed")[1]


def test_raising_repeats_trains_only_the_new_seeds(tmp_path, monkeypatch):
    import nas.evaluator as evaluator_module

    once = run_nas(tiny_config(tmp_path, proxies=["whole"]))
    real_train_once, seeds = evaluator_module._train_once, []

    def train_once(net, proxy, train, **kwargs):
        seeds.append(train.seed)
        return real_train_once(net, proxy, train, **kwargs)

    monkeypatch.setattr(evaluator_module, "_train_once", train_once)
    twice = run_nas(tiny_config(tmp_path, proxies=["whole"], train={"repeats": 2}))
    assert seeds == [1] * 5                                  # seed 0 of every architecture carries over
    fresh = run_nas(apply_values(tiny_config(tmp_path, proxies=["whole"], train={"repeats": 2}),
                                 {"out": str(tmp_path / "fresh")}))
    assert seeds == [1] * 5 + [0, 1] * 5
    for arch, rec in twice.runs["whole"].records.items():
        assert rec.status == "finished"
        assert rec.accuracies[0] == once.runs["whole"].records[arch].accuracy
        assert rec.accuracies == fresh.runs["whole"].records[arch].accuracies
    # The one-training records stay where they were: going back to repeats=1 retrains nothing.
    again = run_nas(tiny_config(tmp_path, proxies=["whole"]))
    assert len(again.runs["whole"].skipped) == 5 and seeds.count(0) == 5


def test_progress_bar_counts_finished_trials_not_partial_ones(tmp_path, capsys):
    from dc_plugins.io import write_json
    from nas.evaluator import TrialRecord, record_path
    from nas.experiment import _trial_progress

    archs = ["w4-d1-none-relu-avg", "w8-d1-none-relu-avg", "w4-d2-none-relu-avg"]
    partial = TrialRecord(archs[0], "whole", "k", "partial", accuracies=[0.5])
    write_json(record_path(tmp_path, archs[0]), partial.to_dict())
    write_json(record_path(tmp_path, archs[1]), TrialRecord(archs[1], "whole", "k", "finished", accuracy=0.5).to_dict())
    with _trial_progress(tmp_path, archs, "whole", done=0, enabled=True):
        pass
    err = capsys.readouterr().err
    assert "1/3" in err and "2/3" not in err


def test_top_k_larger_than_the_space_fails_before_training(tmp_path):
    cfg = tiny_config(tmp_path, score={"top_k": ["30"]})
    with pytest.raises(ValueError, match="top-k '30' asks for 30 architectures, but only 5"):
        run_nas(cfg)
    assert not (tmp_path / "out" / "proxies").exists()


def test_unknown_proxy_kind_fails_before_training(tmp_path):
    cfg = tiny_config(tmp_path, proxies=["whole", "condensed"])
    with pytest.raises(ValueError, match="unknown proxy kind 'condensed'"):
        run_nas(cfg)


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("out: x\nspace: {widths: [32, 64], max_archs: 10}\ntrain: {epochs: 7}\n")
    cfg = load_config(path, [parse_assignment("train.batch=128"), parse_assignment("proxies=[whole,dm]")])
    assert cfg.space.widths == [32, 64] and cfg.space.max_archs == 10
    assert cfg.train.epochs == 7 and cfg.train.batch == 128 and cfg.proxies == ["whole", "dm"]
    with pytest.raises(KeyError, match="unknown config key 'train.epoch'"):
        load_config(None, [{"train": {"epoch": 3}}])
    with pytest.raises(ValueError, match="train.epochs: cannot use 'many'"):
        load_config(None, [{"train": {"epochs": "many"}}])
    with pytest.raises(ValueError, match="experiment.engine must be one of sequential, ts"):
        load_config(None, [{"experiment": {"engine": "slurm"}}])
    with pytest.raises(ValueError, match="trial_concurrency must be 1 with the sequential engine"):
        load_config(None, [{"experiment": {"trial_concurrency": 4}}])
    with pytest.raises(ValueError, match="threads must be >= 1 .*got 0"):
        load_config(None, [{"threads": 0}])


def test_training_service_engine_config_for_remote_machines(tmp_path):
    cfg = tiny_config(tmp_path, experiment={
        "engine": "ts", "trial_concurrency": 2, "port": 8123,
        "training_service": {"platform": "remote", "reuseMode": True,
                             "machineList": [{"host": "10.0.0.2", "user": "me", "sshKeyFile": "~/.ssh/id_rsa"}]}})
    exp_cfg = _experiment_config(cfg, 5, "dc")
    assert exp_cfg.execution_engine.name == "ts" and exp_cfg.trial_concurrency == 2
    assert exp_cfg.training_service.platform == "remote"
    assert exp_cfg.training_service.machine_list[0].host == "10.0.0.2"
    assert exp_cfg.max_trial_number == 5
    local = _experiment_config(tiny_config(tmp_path, experiment={"engine": "ts"}), 3, "dc")
    assert local.training_service.platform == "local"
    with pytest.raises(ValueError, match="'local' has no option 'machineList'"):
        _experiment_config(tiny_config(tmp_path, experiment={
            "engine": "ts", "training_service": {"platform": "local", "machineList": []}}), 3, "dc")


def test_cli_prints_config_and_reports_bad_input(tmp_path, capsys):
    assert main(["--print-config", "--set", "train.epochs=3", "--out", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["epochs"] == 3
    assert main(["--print-config", "--threads", "1", "--out", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == 1
    # Flags of nested fields land in their sections; --set wins over a flag (it comes later).
    assert main(["--print-config", "--max-archs", "7", "--image-size", "16", "--engine", "ts", "--epochs", "5",
                 "--set", "train.epochs=6", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["space"]["max_archs"], printed["data"]["image_size"], printed["experiment"]["engine"],
            printed["train"]["epochs"]) == (7, 16, "ts", 6)
    assert main(["--proxies", "whole,bogus", "--dataset", "digits", "--out", str(tmp_path)]) == 2
    assert "unknown proxy kind 'bogus'" in capsys.readouterr().err
    assert main(["--dataset", "usps", "--root", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "usps.bz2" in capsys.readouterr().err   # names the missing file


def test_the_example_script_reports_bad_input_in_one_line(tmp_path, capsys):
    from tests.examples_util import load_example

    example = load_example("nas_proxy.py")
    out = str(tmp_path / "out")
    assert example.main(["--tiny", "--set", "proxies=[whole, gan]", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas_proxy: error:") and "'gan'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_finished_run_leaves_nni_trial_state_clean(tmp_path):
    import nni

    run_nas(tiny_config(tmp_path, proxies=["whole"]))
    # otherwise NNI's Evaluator.mock_runtime refuses to run in the same process afterwards
    assert nni.get_current_parameter() is None


def test_the_cifar10_jpeg_reduced_config_loads_and_validates():
    from nas.proxy import ProxyProvider, parse_proxy_entry
    from nas.space import DIMENSIONS, check_space, grid_archs, parse_arch

    cfg = load_config("examples/configs/nas_cifar10_jpeg_reduced.yaml")   # resolves to the packaged file
    assert cfg.to_dict() == load_config("nas_cifar10_jpeg_reduced").to_dict()
    assert (cfg.data.validation, cfg.data.train_per_class, cfg.proxy.ipc, cfg.train.repeats) == ("split", 500, 10, 2)
    assert [parse_proxy_entry(p)[0] for p in cfg.proxies] == ["whole", "random", "herding", "dc", "dsa", "dm",
                                                               "mtt", "early-stopping"]
    archs = select_archs(cfg)
    assert len(archs) >= 120 and set(archs) <= set(grid_archs())
    every = {(d, v) for a in grid_archs() for d, v in parse_arch(a).items()}
    assert {(d, v) for a in archs for d, v in parse_arch(a).items()} == every and len(DIMENSIONS) == 5
    check_space(archs, 3, 10, cfg.data.image_size)             # every network builds at 16 px
    # The proxies' settings are ones the engine accepts (iterations per method, matching overrides);
    # checked without data: the provider's checks need only its config.
    provider = object.__new__(ProxyProvider)
    provider.config = cfg.proxy
    assert provider.iterations("dsa") == 200 and provider.matching_config().init == "real"
    # MTT's proxy resolves as condense resolves it (the preset fills what the file leaves unset),
    # to the documented CPU budget: 2 experts of 6 epochs, 50 iterations of 10 synthetic steps.
    from dc_plugins.config import RunConfig, resolve
    from dc_plugins.models import make_convnet

    assert provider.iterations("mtt") == 50
    mtt = resolve(RunConfig(method="mtt", ipc=cfg.proxy.ipc, preset=cfg.proxy.preset, seed=cfg.proxy.seed,
                            matching=provider.matching_config(), trajectory=provider.trajectory_config()))
    t = mtt.trajectory
    assert (t.num_experts, t.expert_train_epochs, t.syn_steps, t.expert_epochs, t.max_start_epoch) == (2, 6, 10, 2, 4)
    assert t.max_start_epoch - 1 + t.expert_epochs <= t.expert_train_epochs   # every start has its target
    assert (t.zca, t.lr_teacher, mtt.matching.lr_img, mtt.matching.init) == (False, 0.01, 1000.0, "real")
    # the matching network MTT trains experts of has no buffers (no BatchNorm running statistics)
    assert not list(make_convnet(cfg.proxy.net, channels=3, num_classes=10, image_size=cfg.data.image_size).buffers())


def test_the_cifar10_jpeg_reduced_config_names_a_known_dataset():
    from dc_plugins import data

    cfg = load_config("nas_cifar10_jpeg_reduced")
    if "imagefolder" not in getattr(data, "FOLDER_DATASETS", ()):
        pytest.skip("this branch's dc_plugins.data has no 'imagefolder' datasets yet (the loader is on another branch)")
    assert data.is_folder_dataset(cfg.data.dataset) and cfg.data.root.endswith("cifar10-jpeg")


def test_a_trial_stopped_between_its_repeats_is_partial_not_failed():
    from types import SimpleNamespace

    from nas.evaluator import TrialRecord
    from nas.experiment import ProxyRun

    recs = {"a": TrialRecord("a", "whole", "k", "finished", 0.5, [0.5, 0.5]),
            "b": TrialRecord("b", "whole", "k", "partial", 0.4, [0.4]),
            "c": TrialRecord("c", "whole", "k", "failed", error="boom")}
    run = ProxyRun(SimpleNamespace(), recs)
    assert list(run.finished) == ["a"] and run.partial == ["b"] and run.failed == ["c"]
