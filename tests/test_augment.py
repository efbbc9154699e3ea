import pytest
import torch

from dc_plugins.augment import DSA_FAMILIES, DCAugment, DSAugment


# Parameters that move every image (flip forced on), for the Siamese test below.
_MOVING = {"flip": {"flip": torch.tensor([True])}, "crop": {"x": torch.tensor([0.9]), "y": torch.tensor([0.1])},
           "cutout": {"x": torch.tensor([0.5]), "y": torch.tensor([0.5])}}


@pytest.mark.parametrize("family", DSA_FAMILIES)
def test_siamese_parameters_transform_an_image_the_same_in_any_batch(family):
    # Siamese = one draw applied to the real and to the synthetic batch: an image must come out
    # the same whichever batch (and position) it is in. (The old test applied one function twice
    # to the same tensor, which no implementation can fail.)
    dsa = DSAugment()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 3, 16, 16, generator=g)
    real = torch.cat([x0, torch.randn(3, 3, 16, 16, generator=g)])
    syn = torch.cat([torch.randn(1, 3, 16, 16, generator=g), x0])
    params = dsa.sample(1, g, family=family)
    if family in _MOVING:
        params.values = _MOVING[family]
    a, b = dsa.apply(real, params), dsa.apply(syn, params)
    assert torch.allclose(a[0], b[1], atol=1e-6)
    assert not torch.allclose(a[0], x0[0])  # and it did transform the image
    # per-image parameters (non-Siamese) transform the same image differently
    per_image = dsa.sample(4, torch.Generator().manual_seed(5), family=family)
    if family not in ("flip",):
        out = dsa.apply(x0.expand(4, -1, -1, -1), per_image)
        assert not torch.allclose(out[0], out[1])


def test_dsa_parameters_lie_in_the_papers_ranges():
    dsa, g, n = DSAugment(), torch.Generator().manual_seed(0), 20000
    v = {f: dsa.sample(n, g, family=f).values for f in ("scale", "rotate", "color", "flip", "crop")}
    for k in ("sx", "sy"):
        assert 1 / 1.2 <= v["scale"][k].min() < 1 / 1.2 + 0.01 and 1.2 - 0.01 < v["scale"][k].max() <= 1.2
    theta = v["rotate"]["theta"].abs().max()
    assert torch.deg2rad(torch.tensor(14.9)) < theta <= torch.deg2rad(torch.tensor(15.0))
    c = v["color"]
    assert -0.5 <= c["brightness"].min() < -0.49 and 0.49 < c["brightness"].max() <= 0.5
    assert 0 <= c["saturation"].min() < 0.01 and 1.99 < c["saturation"].max() <= 2.0
    assert 0.5 <= c["contrast"].min() < 0.51 and 1.49 < c["contrast"].max() <= 1.5
    assert abs(v["flip"]["flip"].float().mean() - 0.5) < 0.02
    # crop: whole-pixel shifts of at most 1/8 of the side (2 px at 16), every one of them drawn
    x = torch.zeros(n, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0
    out = dsa.apply(x, dsa.sample(n, g, family="crop"))
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1], (out[:, 0] == 1).nonzero()[:, 2]
    assert set((rows - 8).tolist()) == set((cols - 8).tolist()) == {-2, -1, 0, 1, 2}


def test_dc_augment_parameters_lie_in_the_dc_codes_ranges(monkeypatch):
    import dc_plugins.augment as augment

    thetas = []
    real_warp = augment._warp
    monkeypatch.setattr(augment, "_warp", lambda x, theta: thetas.append(theta.clone()) or real_warp(x, theta))
    n, w = 5000, 16
    x = torch.randn(n, 1, w, w)
    for strategy in ("crop", "scale", "rotate"):
        DCAugment(strategy)(x, torch.Generator().manual_seed(0))
    crop, scale, rotate = thetas
    shift = crop[:, :, 2] * (w - 1) / 2          # in pixels
    assert torch.allclose(shift, shift.round(), atol=1e-4) and set(shift.round().flatten().tolist()) == set(range(-4, 5))
    diag = torch.stack([scale[:, 0, 0], scale[:, 1, 1]])
    assert 0.8 <= diag.min() < 0.81 and 1.19 < diag.max() <= 1.2
    angle = torch.atan2(rotate[:, 0, 1], rotate[:, 0, 0]).abs().max()
    assert torch.deg2rad(torch.tensor(44.5)) < angle <= torch.deg2rad(torch.tensor(45.0))
    noise = DCAugment("noise")(x, torch.Generator().manual_seed(0)) - x
    assert abs(noise.std() - 0.001) < 2e-5


@pytest.mark.parametrize("family", DSA_FAMILIES)
def test_gradients_flow_to_synthetic_images(family):
    dsa = DSAugment()
    g = torch.Generator().manual_seed(2)
    syn = torch.randn(2, 1, 16, 16, requires_grad=True)
    out = dsa.apply(syn, dsa.sample(1, g, family=family))
    (out * torch.randn_like(out)).sum().backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def test_same_generator_state_gives_same_parameters_and_global_rng_untouched():
    dsa = DSAugment()
    state = torch.random.get_rng_state()
    p1 = dsa.sample(5, torch.Generator().manual_seed(7))
    p2 = dsa.sample(5, torch.Generator().manual_seed(7))
    assert p1.family == p2.family
    assert all(torch.equal(p1.values[k], p2.values[k]) for k in p1.values)
    assert torch.equal(state, torch.random.get_rng_state())


def test_crop_shifts_by_whole_pixels_with_zero_fill():
    dsa = DSAugment()
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    # u = 1.0 maps to the largest shift (+2 px on 16 px), u = 0 to the smallest (-2 px)
    params = dsa.sample(1, torch.Generator(), family="crop")
    params.values = {"x": torch.tensor([0.99]), "y": torch.tensor([0.0])}
    out = dsa.apply(x, params)
    assert out.sum() == 1.0
    assert out[0, 0, 6, 10] == 1.0


def test_cutout_zeroes_a_half_side_square():
    dsa = DSAugment()
    x = torch.ones(1, 1, 16, 16)
    params = dsa.sample(1, torch.Generator(), family="cutout")
    params.values = {"x": torch.tensor([0.5]), "y": torch.tensor([0.5])}
    out = dsa.apply(x, params)
    assert (out == 0).sum() == 8 * 8


def test_no_flip_for_digits_and_bad_strategy():
    assert "flip" not in DSAugment(flip=False).families
    with pytest.raises(ValueError, match="unknown DSA families"):
        DSAugment("color_warp")


def test_non_siamese_call_uses_per_image_parameters():
    dsa = DSAugment("scale")
    x = torch.randn(1, 1, 16, 16).expand(6, -1, -1, -1).contiguous()
    out = dsa(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


def test_dc_augment_is_reproducible_and_keeps_shape():
    aug = DCAugment()
    x = torch.randn(8, 1, 28, 28)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_dc_augment_strategies_follow_the_dc_code():
    from dc_plugins.evaluation import evaluation_augment
    from dc_plugins.models import ConvNetSpec

    assert evaluation_augment("dc", "dc", "mnist", ConvNetSpec())[1].families == ("crop", "scale", "rotate")
    assert evaluation_augment("dc", "dc", "mnist", ConvNetSpec(norm="batch"))[1].families == ("crop", "noise")
    with pytest.raises(ValueError, match="unknown DC augmentation"):
        DCAugment("crop_blur")


def test_dc_augment_noise_only_is_tiny():
    x = torch.randn(16, 1, 8, 8)
    out = DCAugment("noise")(x, torch.Generator().manual_seed(0))
    assert 0 < (out - x).abs().max() < 0.01
