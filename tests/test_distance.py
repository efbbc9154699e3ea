import math

import pytest
import torch

from dc_plugins.matching import gradient_distance, layer_distance


def test_identical_gradients_have_zero_distance():
    g = [torch.randn(8, 3, 3, 3), torch.randn(8), torch.randn(10, 32)]
    assert gradient_distance(g, [t.clone() for t in g]).item() == pytest.approx(0.0, abs=1e-5)


def test_distance_is_sum_over_rows_of_one_minus_cosine():
    real = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    syn = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])  # cos 1, 0, -1
    assert layer_distance(real, syn).item() == pytest.approx(0 + 1 + 2, abs=1e-5)


def test_rows_are_output_units_of_conv_weights():
    # Per output unit the two gradients point the same way (cos 1) but with different scale;
    # a whole-tensor cosine would not be 1. The per-row distance must be 0.
    real = torch.randn(4, 2, 3, 3)
    scale = torch.tensor([1.0, 10.0, 0.1, 5.0]).view(4, 1, 1, 1)
    assert layer_distance(real, real * scale).item() == pytest.approx(0.0, abs=1e-4)
    flat_cos = torch.nn.functional.cosine_similarity(real.flatten(), (real * scale).flatten(), dim=0)
    assert flat_cos < 0.999


def test_one_row_against_hand_computed_cosine():
    a, b = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    cos = (a * b).sum() / (a.norm() * b.norm())
    assert layer_distance(a, b).item() == pytest.approx(1 - cos.item(), abs=1e-5)


def test_biases_and_norm_affine_contribute_nothing():
    real, syn = [torch.randn(16)], [torch.randn(16)]
    assert gradient_distance(real, syn).item() == 0.0
    w_real, w_syn = torch.randn(5, 7), torch.randn(5, 7)
    with_bias = gradient_distance([w_real, torch.randn(5)], [w_syn, torch.randn(5)])
    assert with_bias.item() == pytest.approx(layer_distance(w_real, w_syn).item())


def test_orthogonal_rows_cost_one_each():
    real = torch.eye(6)[:3]
    syn = torch.eye(6)[3:]
    assert layer_distance(real, syn).item() == pytest.approx(3.0, abs=1e-5)
    assert math.isfinite(layer_distance(torch.zeros(3, 4), torch.zeros(3, 4)).item())


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        layer_distance(torch.zeros(3, 4), torch.zeros(4, 3))
