import itertools

import pytest
import torch

from dc_plugins.models import ACTIVATIONS, NORMS, POOLINGS, ConvNetSpec, make_convnet


@pytest.mark.parametrize("norm,activation,pooling", list(itertools.product(NORMS, ACTIVATIONS, POOLINGS)))
def test_every_option_builds_and_runs_at_28_and_32_px(norm, activation, pooling):
    for size, channels in ((28, 1), (32, 3)):
        spec = ConvNetSpec(channels=channels, num_classes=7, image_size=size, width=8, depth=2,
                           norm=norm, activation=activation, pooling=pooling)
        net = make_convnet(spec)
        out = net(torch.randn(3, channels, size, size))
        assert out.shape == (3, 7)
        assert net.embed(torch.randn(2, channels, size, size)).shape == (2, net.embedding_dim)


@pytest.mark.parametrize("width,depth", itertools.product((32, 64, 128, 256), (1, 2, 3, 4)))
def test_every_width_and_depth_of_the_nas_grid(width, depth):
    net = make_convnet(ConvNetSpec(channels=3, image_size=32, width=width, depth=depth))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == depth and all(c.out_channels == width for c in convs)


def test_paper_default_is_three_instance_norm_blocks_of_128():
    spec = ConvNetSpec.parse("convnet", channels=1, image_size=32)
    assert (spec.width, spec.depth, spec.norm, spec.activation, spec.pooling) == (128, 3, "instance", "relu", "avg")
    assert make_convnet(spec).embedding_dim == 128 * 4 * 4


def test_28_px_inputs_are_padded_to_32_by_the_first_conv_as_in_the_dc_code():
    net = make_convnet(ConvNetSpec(channels=1, image_size=28))
    assert net.features[0].padding == (3, 3)
    assert net.embedding_dim == 128 * 4 * 4
    assert make_convnet(ConvNetSpec(channels=1, image_size=32)).features[0].padding == (1, 1)


def test_spec_string_round_trip_and_errors():
    spec = ConvNetSpec(width=64, depth=2, norm="none", activation="sigmoid", pooling="none")
    assert ConvNetSpec.parse(str(spec)) == spec
    assert ConvNetSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="cannot parse 'w6x'"):
        ConvNetSpec.parse("convnet-w6x")
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'"):
        ConvNetSpec(norm="batchnorm")
    with pytest.raises(ValueError, match="too small"):
        ConvNetSpec(image_size=8, depth=4)


def test_generator_makes_networks_reproducible():
    a = make_convnet("convnet-w16-d2", channels=1, image_size=16, generator=torch.Generator().manual_seed(5))
    b = make_convnet("convnet-w16-d2", channels=1, image_size=16, generator=torch.Generator().manual_seed(5))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_seeded_network_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    a = make_convnet("convnet-w8-d2", channels=1, num_classes=3, image_size=8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # torch.nn's default init draws were undone
    b = make_convnet("convnet-w8-d2", channels=1, num_classes=3, image_size=8, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
