import pytest
import torch

from dc_plugins.augment import DSA_FAMILIES, DCAugment, DSAugment


@pytest.mark.parametrize("family", DSA_FAMILIES)
def test_siamese_parameters_transform_identical_inputs_identically(family):
    dsa = DSAugment()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 16, 16)
    params = dsa.sample(1, g, family=family)
    a, b = dsa.apply(x, params), dsa.apply(x.clone(), params)
    assert torch.equal(a, b)
    assert a.shape == x.shape
    # one shared parameter set: identical images inside a batch stay identical
    same = x[:1].expand(4, -1, -1, -1)
    out = dsa.apply(same, params)
    assert torch.allclose(out, out[:1].expand_as(out))


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
