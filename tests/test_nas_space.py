"""The NNI search space: the paper's 720-architecture grid on the engine's ConvNet."""

from __future__ import annotations

import random

import pytest
import torch

pytest.importorskip("nni")

import nas.space  # noqa: E402,F401  (imports NNI without its torch-version warnings)
from nni.nas.space import SimplifiedModelSpace  # noqa: E402


from dc_plugins.models import NORMS, POOLINGS, ConvNet  # noqa: E402
from nas.space import (ConvNetSpace, arch_from_sample, check_space, grid_archs, make_space,  # noqa: E402
                       parse_arch, sample_archs)


@pytest.fixture(scope="module")
def full_space():
    return make_space(channels=1, num_classes=10, image_size=16)


def test_grid_has_720_distinct_architectures():
    archs = grid_archs()
    assert len(archs) == 720 == len(set(archs))


def test_space_enumerates_720_distinct_samples(full_space):
    exe = SimplifiedModelSpace.from_model(full_space, None)
    samples = [arch_from_sample(m.sample) for m in exe.grid()]
    assert len(samples) == 720
    assert set(samples) == set(grid_archs())
    assert set(full_space.simplify()) == {"width", "depth", "norm", "activation", "pooling"}


def _one_per_norm_and_pooling(seed: int) -> list[str]:
    """A seeded sample of the grid with every (normalisation, pooling) pair at least once."""
    rng = random.Random(seed)
    archs = grid_archs()
    picked = []
    for norm in NORMS:
        for pool in POOLINGS:
            picked.append(rng.choice([a for a in archs if f"-{norm}-" in a and a.endswith(f"-{pool}")]))
    return picked


@pytest.mark.parametrize("arch", _one_per_norm_and_pooling(seed=0))
def test_frozen_sample_forward_shape(full_space, arch):
    net = full_space.freeze(parse_arch(arch))
    assert isinstance(net, ConvNet)          # the engine's network, not a second definition
    assert net.spec.arch == arch
    out = net(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 10)


def test_executable_model_is_the_engines_convnet(full_space):
    exe = SimplifiedModelSpace.from_model(full_space, None)
    model = exe.freeze(parse_arch("w32-d2-batch-relu-max"))
    net = model.executable_model()
    assert isinstance(net, ConvNet) and net.spec.arch == "w32-d2-batch-relu-max"


def test_seeded_subset_is_reproducible_and_enumerated_exactly():
    a = sample_archs(grid_archs(), 12, seed=3)
    assert a == sample_archs(grid_archs(), 12, seed=3)
    assert a != sample_archs(grid_archs(), 12, seed=4)
    assert len(set(a)) == 12
    space = make_space(1, 10, 16, a)
    got = [arch_from_sample(m.sample) for m in SimplifiedModelSpace.from_model(space, None).grid()]
    assert sorted(got) == sorted(a)
    values = {k: {parse_arch(x)[k] for x in a} for k in parse_arch(a[0])}
    outside = next(x for x in grid_archs() if x not in a
                   and all(v in values[k] for k, v in parse_arch(x).items()))
    with pytest.raises(Exception, match="not in this subset"):
        space.freeze(parse_arch(outside))


def test_product_subset_has_no_constraint():
    archs = grid_archs(widths=[8], depths=[1, 2], norms=["none", "batch"], activations=["relu"], poolings=["avg"])
    space = make_space(1, 10, 8, archs)
    assert set(space.simplify()) == {"width", "depth", "norm", "activation", "pooling"}
    assert space(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_bad_values_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown norm"):
        grid_archs(norms=["batch", "weight"])
    with pytest.raises(ValueError, match="positive integers"):
        grid_archs(widths=[0])
    with pytest.raises(ValueError, match="cannot be built.*w32-d4-none-relu-avg"):
        check_space(["w32-d4-none-relu-avg"], channels=1, num_classes=10, image_size=8)
    with pytest.raises(ValueError, match="duplicate"):
        ConvNetSpace(1, 10, 16, ["w32-d1-none-relu-avg", "w32-d1-none-relu-avg"])
    with pytest.raises(ValueError, match="max_archs"):
        sample_archs(grid_archs(), 0, seed=0)


def _values(archs):
    return {(d, v) for a in archs for d, v in parse_arch(a).items()}


def test_covering_subset_holds_every_design_choice():
    grid = grid_archs()
    every = _values(grid)
    assert len(every) == 4 + 4 + 5 + 3 + 3
    # A plain seeded sample of 12 misses some value for most seeds; the covering one never does.
    assert any(_values(sample_archs(grid, 12, seed)) != every for seed in range(10))
    for seed in range(10):
        covered = sample_archs(grid, 12, seed, cover=True)
        assert len(covered) == len(set(covered)) == 12 and _values(covered) == every
    big = sample_archs(grid, 120, 0, cover=True)
    assert big == sample_archs(grid, 120, 0, cover=True) and big != sample_archs(grid, 120, 1, cover=True)
    assert big == sorted(big, key=grid.index) and len(big) == 120 and _values(big) == every
    with pytest.raises(ValueError, match="max_archs=3 is too few to hold every design choice"):
        sample_archs(grid, 3, 0, cover=True)
    # Without cover the subsets of earlier runs stay what they were.
    assert sample_archs(grid, 12, seed=3) == sample_archs(grid, 12, 3, cover=False)
