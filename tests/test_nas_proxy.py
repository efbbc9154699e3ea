"""The proxy-dataset provider: kinds, on-disk cache keyed by the full config, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dc_plugins.synthetic import SyntheticSet
from nas.config import DataConfig, ProxyConfig
import nas.data as nas_data
from nas.data import load_split, stratified_split, with_absolute_root
from nas.proxy import PROXY_KINDS, Proxy, ProxyProvider, early_stopping_steps, parse_proxy_entry

DATA = DataConfig(dataset="digits", val_fraction=0.2)


@pytest.fixture(scope="module")
def split():
    return load_split(DATA)


def _provider(split, tmp_path, **kw):
    cfg = ProxyConfig(ipc=2, preset="cpu-quick", net="convnet-w8-d2", selection={"reference_epochs": 1}, **kw)
    return ProxyProvider(split, cfg, tmp_path / "cache", progress=False)


def test_split_is_stratified_disjoint_and_seeded(split):
    assert len(split.train) + len(split.val) == 1437
    keep, held = stratified_split(split.train.labels, 0.25, seed=1)
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert torch.equal(held, stratified_split(split.train.labels, 0.25, seed=1)[1])
    counts = torch.bincount(split.train.labels[held], minlength=10)
    assert counts.min() >= 1


def test_cache_is_reused_when_the_config_is_identical(split, tmp_path):
    first = _provider(split, tmp_path).get("random")
    assert not first.cached and first.num_images == 20
    mtime = (tmp_path / "cache").glob("random-*/set.pt").__next__().stat().st_mtime_ns
    again = _provider(split, tmp_path)
    second = again.get("random")
    assert second.cached and again.built == []
    assert second.key == first.key and second.set_path == first.set_path
    assert next((tmp_path / "cache").glob("random-*/set.pt")).stat().st_mtime_ns == mtime
    assert torch.equal(second.load_set().images, first.load_set().images)


def _get_before_and_after(split, tmp_path, kind, change):
    """``kind``'s proxy, then the provider with ``change`` applied and its proxy (same cache)."""
    provider = _provider(split, tmp_path, iterations=1)
    base = provider.get(kind)
    other = ProxyProvider(split, dataclasses.replace(provider.config, **change), tmp_path / "cache", progress=False)
    return base, other, other.get(kind)


@pytest.mark.parametrize("kind, change", [("random", {"seed": 1}), ("random", {"ipc": 3}),
                                          ("herding", {"selection": {"reference_epochs": 2}}),
                                          ("herding", {"net": "convnet-w8-d1"}),
                                          ("dm", {"iterations": 2}), ("dm", {"matching": {"lr_img": 0.5}})])
def test_cache_is_rebuilt_when_the_config_changes(split, tmp_path, kind, change):
    base, other, proxy = _get_before_and_after(split, tmp_path, kind, change)
    assert other.built == [kind] and not proxy.cached
    assert proxy.key != base.key and proxy.set_path != base.set_path


@pytest.mark.parametrize("kind, change", [("random", {"net": "convnet-w8-d1"}),
                                          ("random", {"matching": {"lr_img": 0.5}, "preset": "paper"}),
                                          ("herding", {"matching": {"lr_img": 0.5}, "iterations": 2}),
                                          ("dm", {"selection": {"reference_epochs": 2}})])
def test_a_change_a_proxy_does_not_depend_on_reuses_it(split, tmp_path, kind, change):
    # e.g. a wider matching network for DC must not rebuild random (nor retrain its 720 trials)
    base, other, proxy = _get_before_and_after(split, tmp_path, kind, change)
    assert other.built == [] and proxy.cached
    assert proxy.key == base.key and torch.equal(proxy.load_set().images, base.load_set().images)


def test_cache_is_rebuilt_when_the_data_changes(split, tmp_path):
    base = _provider(split, tmp_path).get("whole")
    other_split = load_split(dataclasses.replace(DATA, val_fraction=0.3))
    proxy = _provider(other_split, tmp_path).get("whole")
    assert proxy.key != base.key and proxy.num_images < base.num_images


def test_train_per_class_limits_only_the_training_part_and_keys_the_proxy(split, tmp_path):
    limited = load_split(dataclasses.replace(DATA, train_per_class=30))
    assert torch.bincount(limited.train.labels).tolist() == [30] * 10
    assert torch.equal(limited.val.labels, split.val.labels)          # validation images unchanged
    full_rows = {tuple(x.flatten().tolist()) for x in split.train.images}
    assert all(tuple(x.flatten().tolist()) in full_rows for x in limited.train.images)
    nas_data._CACHE.clear()                                             # load from disk again
    again = load_split(dataclasses.replace(DATA, train_per_class=30))
    assert again is not limited and torch.equal(again.train.images, limited.train.images)  # seeded
    base, proxy = _provider(split, tmp_path).get("whole"), _provider(limited, tmp_path).get("whole")
    assert proxy.key != base.key and proxy.num_images == 300


@pytest.mark.parametrize("per_class, match", [(0, r"train_per_class must be >= 1.*got 0"),
                                              (10_000, r"train_per_class=10000.*allowed: 1\.\.\d+")])
def test_bad_train_per_class_is_a_clear_error(per_class, match):
    from nas.config import load_config

    with pytest.raises(ValueError, match=match):
        if per_class < 1:
            load_config(overrides=[{"data": {"train_per_class": per_class}}])
        else:
            load_split(dataclasses.replace(DATA, train_per_class=per_class))


def test_damaged_cache_entry_is_rebuilt(split, tmp_path):
    first = _provider(split, tmp_path).get("random")
    original = first.load_set().images
    with open(first.set_path, "r+b") as f:
        f.seek(200)
        f.write(b"garbage")
    again = _provider(split, tmp_path)
    proxy = again.get("random")
    assert again.built == ["random"] and not proxy.cached
    assert torch.equal(proxy.load_set().images, original)   # same config, same selection


def test_descriptor_round_trip_and_small(split, tmp_path):
    proxy = _provider(split, tmp_path).get("kcenter")
    loaded = Proxy.load(proxy.path)
    assert loaded.to_dict() == proxy.to_dict()
    assert loaded.data_config == with_absolute_root(split.config)
    assert len(open(proxy.path, "rb").read()) < 64 * 1024   # what NNI would pickle is the path only


def test_whole_and_early_stopping_have_no_set_file(split, tmp_path):
    p = _provider(split, tmp_path)
    whole, es = p.get("whole"), p.get("early_stopping")
    assert whole.set_path is None and whole.num_images == len(split.train)
    assert es.kind == "early-stopping" and es.ipc == 2
    assert early_stopping_steps(epochs=100, ipc=10, num_classes=10, batch=256) == 40


def test_saved_set_file_is_a_proxy(split, tmp_path):
    made = _provider(split, tmp_path).get("random").load_set()
    path = made.save(tmp_path / "mine.pt")
    proxy = _provider(split, tmp_path).get(str(path))
    assert proxy.kind == "file" and proxy.label == "file:mine" and proxy.num_images == 20


def test_unknown_proxy_kind_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown proxy kind 'condensed'.*allowed: whole, early-stopping"):
        parse_proxy_entry("condensed")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_proxy_entry("/nowhere/set.pt")
    assert "dc" in PROXY_KINDS and "dm" in PROXY_KINDS


def test_proxy_file_for_another_dataset_or_shape_is_rejected(split, tmp_path):
    other = SyntheticSet(torch.randn(20, 1, 8, 8), torch.arange(10).repeat_interleave(2), "dc", "mnist", 2)
    with pytest.raises(ValueError, match="made from dataset 'mnist'; this run uses 'digits'"):
        _provider(split, tmp_path).get(str(other.save(tmp_path / "mnist.pt")))
    shape = SyntheticSet(torch.randn(20, 3, 16, 16), torch.arange(10).repeat_interleave(2), "dc", "digits", 2)
    with pytest.raises(ValueError, match="3 channel.*16x16 px.*expects 1 channel.*8x8"):
        _provider(split, tmp_path).get(str(shape.save(tmp_path / "rgb.pt")))


def test_bad_matching_override_is_a_clear_error(split, tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'proxy.matching.lr_image'; allowed: .*lr_img"):
        ProxyProvider(split, ProxyConfig(matching={"lr_image": 0.1}), tmp_path, progress=False)
    # values are typed as the engine's dataclass declares them (before: accepted, failed mid-run)
    with pytest.raises(ValueError, match="proxy.matching.lr_img: cannot use 'fast'"):
        ProxyProvider(split, ProxyConfig(matching={"lr_img": "fast"}), tmp_path, progress=False)
    with pytest.raises(ValueError, match="proxy.selection.reference_epochs: cannot use 2.5"):
        ProxyProvider(split, ProxyConfig(selection={"reference_epochs": 2.5}), tmp_path, progress=False)
    p = ProxyProvider(split, ProxyConfig(matching={"lr_img": "0.05", "init": "real"}), tmp_path, progress=False)
    assert p.matching_config().lr_img == 0.05 and p.matching_config().init == "real"


def test_iterations_per_method(split, tmp_path):
    p = ProxyProvider(split, ProxyConfig(iterations={"dc": 3, "dm": 7}), tmp_path, progress=False)
    assert p.iterations("dc") == 3 and p.iterations("dm") == 7 and p.iterations("random") is None
    assert ProxyProvider(split, ProxyConfig(iterations=5), tmp_path, progress=False).iterations("dsa") == 5
    with pytest.raises(ValueError, match=r"unknown methods \['mtm'\]"):
        ProxyProvider(split, ProxyConfig(iterations={"mtm": 3}), tmp_path, progress=False)


def test_descriptors_hold_an_absolute_data_root_even_when_cached_with_another(split, tmp_path, monkeypatch):
    """Trials of NNI's training services run in other working directories (remote ones on other
    machines, with the same paths): a relative data.root in the descriptor would point elsewhere."""
    monkeypatch.chdir(tmp_path)
    proxy = _provider(split, tmp_path).get("random")          # split.config.root is "data"
    assert Proxy.load(proxy.path).data["root"] == str(tmp_path.resolve() / "data")
    # A descriptor cached with a root relative to another directory is rewritten on reuse; the
    # proxy itself (its key and set) is the same.
    stale = Proxy.load(proxy.path)
    stale.data = dict(stale.data, root="../elsewhere/data")
    stale.save(proxy.path)
    again = _provider(split, tmp_path).get("random")
    assert again.cached and again.key == proxy.key and again.set_path == proxy.set_path
    assert Proxy.load(again.path).data["root"] == str(tmp_path.resolve() / "data")


def test_a_trial_in_another_working_directory_reads_the_same_data(tmp_path, monkeypatch):
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "usps.bz2").is_file():
        pytest.skip(f"USPS not found at {SHARED_DATA}")
    import os

    monkeypatch.chdir(SHARED_DATA.parent)
    usps = load_split(DataConfig(dataset="usps", root=os.path.relpath(SHARED_DATA), val_fraction=0.2))
    proxy = _provider(usps, tmp_path).get("whole")
    monkeypatch.chdir(tmp_path)                                # where a trial of the ts engine would run
    monkeypatch.setattr(nas_data, "_CACHE", {})                # a new process: nothing loaded yet
    seen = load_split(Proxy.load(proxy.path).data_config)
    assert torch.equal(seen.train.images, usps.train.images) and torch.equal(seen.val.labels, usps.val.labels)


MTT_FAST = {"syn_steps": 3, "expert_epochs": 1, "max_start_epoch": 2, "num_experts": 1, "expert_train_epochs": 2,
            "batch_syn": 10}


def test_mtt_is_a_proxy_kind_keyed_by_its_trajectory_settings(split, tmp_path):
    assert "mtt" in PROXY_KINDS
    provider = _provider(split, tmp_path, iterations=1, trajectory=MTT_FAST, matching={"lr_img": 10.0})
    proxy = provider.get("mtt")
    assert proxy.num_images == 20 and proxy.load_set().method == "mtt"
    folder = tmp_path / "cache" / f"mtt-{proxy.key[:16]}"
    assert (folder / "experts" / "expert_0000.pt").is_file()
    assert _provider(split, tmp_path, iterations=1, trajectory=MTT_FAST, matching={"lr_img": 10.0}).get("mtt").cached
    other = _provider(split, tmp_path, iterations=1, trajectory={**MTT_FAST, "syn_steps": 4},
                      matching={"lr_img": 10.0})
    assert not other.get("mtt").cached
    # the trajectory section does not key the other proxies
    dm = _provider(split, tmp_path, iterations=1).get("dm")
    assert _provider(split, tmp_path, iterations=1, trajectory={"syn_steps": 4}).get("dm").key == dm.key
    with pytest.raises(ValueError, match="unknown config key 'proxy.trajectory.steps'"):
        _provider(split, tmp_path, trajectory={"steps": 3})


def test_selmatch_is_a_proxy_kind_too(split, tmp_path):
    traj = {**MTT_FAST, "selmatch": {"alpha": 0.0, "beta": 0.5, "score_epochs": 1}}
    proxy = _provider(split, tmp_path, iterations=1, trajectory=traj).get("selmatch")
    syn = proxy.load_set()
    assert syn.method == "selmatch" and proxy.num_images == 20 and not any(syn.config["distilled"])
    assert syn.config["selmatch"]["beta"] == 0.5
