import pytest

from dc_plugins.config import RunConfig, apply_overrides, dc_loops, load_yaml, resolve


def test_paper_preset_fills_published_settings():
    cfg = resolve(RunConfig(method="dc", ipc=10))
    assert (cfg.iterations, cfg.matching.lr_img, cfg.matching.batch_real, cfg.matching.init) == (1000, 0.1, 256, "noise")
    assert cfg.image_size == 28 and cfg.eval.epochs is None  # MNIST: padded inside the ConvNet
    assert resolve(RunConfig(dataset="usps")).image_size == 32
    assert resolve(RunConfig(method="dm")).iterations == 20000
    assert resolve(RunConfig(method="dsa")).matching.init == "real"
    assert dc_loops(1) == (1, 1) and dc_loops(10) == (10, 50) and dc_loops(50) == (50, 10)


def test_dc_loops_keep_the_paper_rows_and_have_a_monotone_rule_between_them():
    rows = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
    assert {k: dc_loops(k) for k in rows} == rows
    # 2-9: outer = ipc, inner linear between the ipc-1 and ipc-10 rows (not the ipc-1 recipe).
    assert [dc_loops(k) for k in (2, 5, 9)] == [(2, 6), (5, 23), (9, 45)]
    # >= 10: outer = ipc, outer x inner near 550 (the rows' 500-600).
    assert [dc_loops(k) for k in (11, 15, 25, 60, 100)] == [(11, 50), (15, 37), (25, 22), (60, 9), (100, 6)]
    loops = [dc_loops(k) for k in range(1, 301)]
    assert all(b[0] >= a[0] for a, b in zip(loops, loops[1:]))                 # outer never decreases
    assert all(b[1] >= a[1] for a, b in zip(loops[:9], loops[1:10]))           # inner rises to 10 ...
    assert all(b[1] <= a[1] for a, b in zip(loops[9:], loops[10:]))            # ... then falls
    assert all(450 <= o * i <= 650 for o, i in loops[9:50])
    with pytest.raises(ValueError, match="ipc must be a positive integer, got 0"):
        dc_loops(0)


def test_cpu_quick_inner_loop_follows_dc_loops_and_keeps_its_ipc_1_and_10_values():
    inner = {k: resolve(RunConfig(method="dc", ipc=k, preset="cpu-quick")).matching.inner_loop for k in (1, 5, 10, 15)}
    assert inner == {1: 1, 5: 2, 10: 5, 15: 3}


def test_explicit_values_win_over_the_preset():
    cfg = RunConfig(method="dc", ipc=1, preset="cpu-quick", iterations=7)
    cfg.matching.batch_real = 128
    r = resolve(cfg)
    assert (r.iterations, r.matching.batch_real, r.matching.lr_img) == (7, 128, 0.1)
    assert r.eval.epochs == 1000 and r.image_size == 28
    assert cfg.matching.lr_img is None  # resolve() does not mutate its input


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: dm\nipc: 5\nmatching:\n  lr_img: 2.0\neval:\n  networks: 2\n")
    cfg = load_yaml(path)
    assert (cfg.method, cfg.ipc, cfg.matching.lr_img, cfg.eval.networks) == ("dm", 5, 2.0, 2)
    apply_overrides(cfg, {"eval": {"epochs": "50"}, "iterations": "none"})
    assert cfg.eval.epochs == 50 and cfg.iterations is None


@pytest.mark.parametrize("change,message", [
    ({"method": "gan"}, "unknown method 'gan'; allowed: dc, dsa, dm, mtt, selmatch, random"),
    ({"ipc": 0}, "ipc must be a positive integer, got 0"),
    ({"ipc": -3}, "ipc must be a positive integer, got -3"),
    ({"preset": "fast"}, "unknown preset 'fast'; allowed: paper, cpu-quick"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        resolve(RunConfig(**change))


def test_unknown_keys_and_bad_types_are_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown config key 'matching.lr'"):
        apply_overrides(RunConfig(), {"matching": {"lr": 1}})
    with pytest.raises(ValueError, match="ipc: cannot use 'ten'"):
        apply_overrides(RunConfig(), {"ipc": "ten"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_yaml(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_yaml(tmp_path / "none.yaml")


def test_packaged_configs_load_by_name_and_by_missing_checkout_path(tmp_path):
    from dc_plugins.config import packaged_configs, read_yaml_mapping

    shipped = packaged_configs()
    assert {"nas_offline_reduced", "nas_cifar10_full", "continual_digits"} <= set(shipped)
    by_name = read_yaml_mapping("nas_offline_reduced")
    assert by_name == read_yaml_mapping("nas_offline_reduced.yaml")
    # the old checkout path resolves to the packaged file where the file itself is absent
    assert by_name == read_yaml_mapping("examples/configs/nas_offline_reduced.yaml")
    assert by_name["data"]["dataset"] == "usps"
    local = tmp_path / "nas_offline_reduced.yaml"
    local.write_text("out: mine\n")
    assert read_yaml_mapping(local) == {"out": "mine"}  # an existing file always wins
    with pytest.raises(FileNotFoundError, match="no packaged config is named 'nope'.*nas_offline_reduced"):
        read_yaml_mapping("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        read_yaml_mapping(bad)


def test_one_fill_mechanism_validates_every_leaf_by_its_declared_type():
    from dataclasses import dataclass, field

    from dc_plugins.settings import apply_overrides as fill

    @dataclass
    class Inner:
        rate: float = 0.1
        names: list[str] = field(default_factory=list)

    @dataclass
    class Outer:
        count: int | None = 3
        flag: bool = False
        seeds: list[int] = field(default_factory=lambda: [0])
        per_method: int | dict | None = None
        inner: Inner = field(default_factory=Inner)

    cfg = fill(Outer(), {"count": "none", "flag": "yes", "seeds": "1, 2", "per_method": "{dc: 5}",
                         "inner": {"rate": 1, "names": [10, "5%"]}})
    assert (cfg.count, cfg.flag, cfg.seeds, cfg.per_method) == (None, True, [1, 2], {"dc": 5})
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float) and cfg.inner.names == ["10", "5%"]
    assert fill(Outer(), {"seeds": 4, "per_method": 7}).seeds == [4]
    for bad, message in [({"count": True}, "count: cannot use True"), ({"count": 2.5}, "count: cannot use 2.5"),
                         ({"seeds": ["a"]}, "seeds: cannot use"), ({"inner": {"rate": "fast"}}, "inner.rate: cannot use 'fast'"),
                         ({"inner": 3}, "inner must be a mapping")]:
        with pytest.raises(ValueError, match=message):
            fill(Outer(), bad)
    with pytest.raises(KeyError, match="unknown config key 'inner.rat'; allowed: names, rate"):
        fill(Outer(), {"inner": {"rat": 1}})


def test_finding_packaged_configs_imports_no_package():
    import subprocess
    import sys

    code = ("import sys; from dc_plugins.settings import packaged_configs; names = packaged_configs(); "
            "print({'continual_digits', 'continual_cifar10_jpeg'} <= set(names), 'strategies' in sys.modules, "
            "'avalanche' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]  # importing strategies costs seconds (Avalanche)
