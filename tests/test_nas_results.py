"""Results files (nas.results): export a run's trials, score the file alone, seed a fresh run
folder from it and continue without retraining; other configurations and damaged files refused."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("nni")

from dc_plugins.fingerprint import ConfigMismatchError  # noqa: E402
from nas.cli import main  # noqa: E402
from nas.config import apply_values  # noqa: E402
from nas.evaluator import evaluate_architecture  # noqa: E402
from nas.experiment import run_nas, score_results  # noqa: E402
from nas.results import (FORMAT, VERSION, ResultsFileError, export_results, import_results,  # noqa: E402
                         read_results_file, results_from_file)
from tests.test_nas_experiment import FAIL_ARCH, failing_for_one_arch, tiny_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*is found to be not a nn.Module")

TRAINED: list[str] = []


def must_not_train(model, **kwargs):
    """A trial function that fails the test's expectations if it is ever called."""
    TRAINED.append(model.spec.arch)
    raise RuntimeError(f"{model.spec.arch} was trained again")


def counting(model, **kwargs):
    TRAINED.append(model.spec.arch)
    return evaluate_architecture(model, **kwargs)


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN == NaN here


_COST = ("train_minutes", "compute_minutes", "compute_fraction", "early_stopping_equal_compute")


def _same_scores(a: list[dict], b: list[dict]) -> bool:
    """The same table: every figure equal, the cost ones (from times kept to 6 digits) to 1e-4."""
    for x, y in zip(a, b, strict=True):
        for key in _COST:
            u, v = x[key], y[key]
            if isinstance(u, dict):
                assert v is not None and all(abs(u[k] - v[k]) <= 1e-4 * max(1.0, abs(u[k])) for k in u), key
            else:
                assert u == pytest.approx(v, rel=1e-4, abs=1e-4) if u is not None else v is None, key
    strip = [[{k: v for k, v in row.items() if k not in _COST} for row in rows] for rows in (a, b)]
    return _same(*strip)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny grid on three proxies, its results file, and its config."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tmp, proxies=["whole", "random", "early-stopping"], train={"repeats": 2})
    results = run_nas(cfg)
    path = export_results(cfg.out, tmp / "results" / "tiny.json")
    return cfg, results, path


def test_the_file_is_small_versioned_and_scores_like_the_run(finished_run, capsys):
    cfg, results, path = finished_run
    payload = read_results_file(path)
    assert (payload["format"], payload["version"]) == (FORMAT, VERSION)
    assert payload["commit"] == results.commit and (len(payload["commit"]) == 40 or payload["commit"] == "unknown")
    random = payload["proxies"]["random"]
    assert random["key"] == results.runs["random"].proxy.key and random["config"]["seed"] == 0
    assert len(random["trials"]) == 5 and "intermediate" not in random["columns"]
    assert path.stat().st_size < 20_000 and "set.pt" not in path.read_text()  # no sets, no paths to them
    # The same scores from the file alone, cost columns and seed-to-seed table included.
    again = score_results(results_from_file(path), "whole", cfg.score.top_k)
    assert _same_scores(again.scores, results.scores) and _same(again.agreement, results.agreement)
    assert _same(again.choices, results.choices) and _same(again.spread, results.spread)
    assert _same(again.shifts, results.shifts) and [r["proxy"] for r in results.shifts] == ["random", "early-stopping"]
    assert [r["proxy"] for r in results.spread] == ["random", "early-stopping"]   # each trained twice
    assert results.spread[0]["trainings"] == 2 and len(results.spread[0]["spearman_all"]) == 2
    assert results.margins == []                  # no condensed proxy in this grid
    assert results.scores[1]["compute_minutes"] > 0 and results.scores[1]["early_stopping_equal_compute"]
    capsys.readouterr()
    assert main(["score", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert _same_scores(printed["scores"], results.scores)
    assert main(["score", str(path)]) == 0
    assert "early stopping at equal compute" in (text := capsys.readouterr().out)
    assert "Each training against the reference" in text
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.json"]  # scoring a file writes nothing


def test_import_into_a_fresh_folder_then_run_trains_and_builds_nothing(finished_run, tmp_path, capsys):
    cfg, results, path = finished_run
    fresh = apply_values(tiny_config(tmp_path, proxies=["whole", "random", "early-stopping"], train={"repeats": 2}),
                         {"out": str(tmp_path / "fresh")})
    assert main(["import", str(path), fresh.out]) == 0        # the config stored in the file
    assert "random: 5 trials imported, 0 already there" in capsys.readouterr().out
    TRAINED.clear()
    continued = run_nas(fresh, function=must_not_train)
    assert TRAINED == []
    assert all(len(run.skipped) == 5 and not run.failed for run in continued.runs.values())
    assert not (tmp_path / "fresh" / "proxies").exists()      # no proxy rebuilt for nothing
    assert _same_scores(continued.scores, results.scores)
    # Importing again keeps what is there.
    assert import_results(path, fresh)["random"] == {"imported": 0, "kept": 5}


def test_a_continued_run_trains_only_what_the_file_lacks(tmp_path):
    cfg = tiny_config(tmp_path, proxies=["whole", "random"])
    run_nas(cfg, function=failing_for_one_arch)               # one architecture fails on both proxies
    path = export_results(cfg.out, tmp_path / "partial.json")
    assert [row[1] for row in read_results_file(path)["proxies"]["random"]["trials"]].count("failed") == 1
    fresh = apply_values(tiny_config(tmp_path, proxies=["whole", "random"]), {"out": str(tmp_path / "fresh")})
    assert import_results(path, fresh) == {"whole": {"imported": 4, "kept": 0}, "random": {"imported": 4, "kept": 0}}
    TRAINED.clear()
    continued = run_nas(fresh, function=counting)
    assert TRAINED == [FAIL_ARCH, FAIL_ARCH]                  # only the failed trial, once per proxy
    assert all(len(run.finished) == 5 and len(run.skipped) == 4 for run in continued.runs.values())


def test_a_run_stopped_during_a_proxy_exports_that_proxys_finished_trials(tmp_path, monkeypatch):
    import nas.experiment as experiment

    real = experiment.run_proxy_experiment

    def stopped_during_random(archs, proxy, *args, **kwargs):
        if proxy.label == "random":  # two trials end, then the session does
            real(archs[:2], proxy, *args, **kwargs)
            raise KeyboardInterrupt("session over")
        return real(archs, proxy, *args, **kwargs)

    cfg = tiny_config(tmp_path, proxies=["whole", "random"])
    monkeypatch.setattr(experiment, "run_proxy_experiment", stopped_during_random)
    with pytest.raises(KeyboardInterrupt):
        run_nas(cfg)
    monkeypatch.undo()
    path = export_results(cfg.out, tmp_path / "stopped.json")
    trials = read_results_file(path)["proxies"]["random"]["trials"]
    assert [row[1] for row in trials] == ["finished", "finished"]
    fresh = apply_values(tiny_config(tmp_path, proxies=["whole", "random"]), {"out": str(tmp_path / "fresh")})
    assert import_results(path, fresh) == {"whole": {"imported": 5, "kept": 0}, "random": {"imported": 2, "kept": 0}}
    TRAINED.clear()
    continued = run_nas(fresh, function=counting)
    assert len(TRAINED) == 3 and len(continued.runs["random"].finished) == 5  # only the three left


@pytest.mark.parametrize("changes, field", [
    ({"proxy": {"seed": 1}}, "proxies.random.config.seed: 0 -> 1"),
    ({"train": {"epochs": 4}}, "proxies.random.train.epochs: 3 -> 4"),
    ({"data": {"val_fraction": 0.25}}, "proxies.random.config.data.val_fraction: 0.2 -> 0.25"),
    ({"space": {"max_archs": 4}}, "space.max_archs: 5 -> 4"),
])
def test_a_file_of_another_configuration_is_refused_naming_the_fields(finished_run, tmp_path, changes, field):
    _, _, path = finished_run
    other = tiny_config(tmp_path, proxies=["whole", "random", "early-stopping"], train={"repeats": 2})
    other = apply_values(other, changes)
    with pytest.raises(ConfigMismatchError, match=f"results file {path} is of another configuration .*{field}"):
        import_results(path, other)
    assert not (tmp_path / "out" / "trials").exists()          # nothing written


def test_the_cli_refuses_another_configuration_in_one_line(finished_run, tmp_path, capsys):
    _, _, path = finished_run
    code = main(["import", str(path), str(tmp_path / "x"), "--dataset", "digits", "--set", "proxy.seed=2",
                 "--set", "proxies=[whole, random]"])
    err = capsys.readouterr().err
    assert code == 2 and "config.seed: 0 -> 2" in err and len(err.strip().splitlines()) == 1
    assert main(["import", str(path), str(tmp_path / "x"), "--set", "proxies=[dm]", "--dataset", "digits"]) == 2
    assert "nothing to import" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # Flags apply on top of the file's own config: the data somewhere else on this machine is fine
    # (where the files are is not part of any key; their content is).
    assert main(["import", str(path), str(tmp_path / "x"), "--root", str(tmp_path / "elsewhere")]) == 0
    assert "whole: 5 trials imported" in capsys.readouterr().out


def test_a_damaged_or_foreign_file_is_refused_naming_it(finished_run, tmp_path, capsys):
    cfg, _, path = finished_run
    text = path.read_text()
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(ResultsFileError, match=f"{truncated} is not a readable dc-nas results file: invalid JSON"):
        read_results_file(truncated)
    edited = tmp_path / "edited.json"
    payload = json.loads(text)
    payload["proxies"]["random"]["trials"][0][2] = 0.99        # a better accuracy, by hand
    edited.write_text(json.dumps(payload))
    with pytest.raises(ResultsFileError, match="does not match its sha256"):
        results_from_file(edited)
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"config": {}, "proxies": {}}))
    with pytest.raises(ResultsFileError, match="'format' is None, not 'dc-nas-results'"):
        read_results_file(foreign)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(dict(payload, version=VERSION + 1)))
    with pytest.raises(ResultsFileError, match=f"format version {VERSION + 1}"):
        read_results_file(newer)
    for bad in (truncated, edited):
        assert main(["import", str(bad), str(tmp_path / "seeded")]) == 2
        assert str(bad) in capsys.readouterr().err
        assert main(["score", str(bad)]) == 2
        assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "seeded").exists()
    with pytest.raises(SystemExit):
        main(["export", cfg.out])                              # export needs RUN_DIR and the file
