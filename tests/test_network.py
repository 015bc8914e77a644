import pytest
import torch

from napari_gldeblur.network import CONFIGS, MULTIPLE, VARIANTS, DBAFNet, NetConfig, build, count_parameters, deepen, receptive_radius

TINY = NetConfig(width=4, blocks=1)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("hw", [(17, 23), (8, 8), (5, 3)])
def test_shapes_for_odd_sizes_and_variants(variant, hw):
    net = build(TINY, variant).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = net(x, branch_images=True)
    assert out.image.shape == x.shape
    assert out.local_features.shape == (2, TINY.width, *hw)
    assert out.local_image.shape == x.shape
    if variant == "LB":
        assert out.global_features is None and out.attention is None and out.global_image is None
    else:
        assert out.global_features.shape == (2, TINY.width, *hw)
        assert out.global_image.shape == x.shape
    if variant == "DB":
        assert out.attention is None
    if variant == "DBAF":
        assert out.attention.shape == (2, TINY.width, *hw)


def test_attention_mask_in_unit_range():
    net = build(TINY).eval()
    with torch.no_grad():
        m = net(torch.randn(1, 3, 16, 16) * 10).attention
    assert m.min() >= 0 and m.max() <= 1


def test_fusion_is_equation_1():
    net = build(TINY).eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        out = net(x)
        psi_b, m = net.fuse(x, out.local_features, out.global_features)
        expected = out.local_features * out.attention + out.global_features
    assert torch.allclose(psi_b, expected)


def test_padding_does_not_leak_between_images():
    """Output for a crop equals output on the crop itself: padding is per image, not a shape hack."""
    net = build(TINY).eval()
    x = torch.rand(1, 3, 13, 13)
    with torch.no_grad():
        a = net(x).image
        b = net(x[..., :12, :12]).image
    assert a.shape[-2:] == (13, 13) and b.shape[-2:] == (12, 12)
    assert MULTIPLE == 4


def test_frozen_global_branch_stays_bit_identical():
    torch.manual_seed(0)
    net = build(TINY)
    net.global_branch.requires_grad_(False)
    before = {k: v.clone() for k, v in net.global_branch.state_dict().items()}
    local_before = net.local_branch.head[0].weight.clone()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    loss = torch.mean((net(x).image - y) ** 2)
    loss.backward()
    opt.step()
    for k, v in net.global_branch.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(net.local_branch.head[0].weight, local_before)


def test_paper_config_parameter_count():
    n = count_parameters(build("paper"))
    # Two [37]-style branches (widths 64/128/256, 6 blocks per scale, 4x4 transposed convs): ~10.4M each.
    assert 19e6 < n < 23e6, n
    assert count_parameters(build("lite")) < n / 20


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown variant"):
        DBAFNet(NetConfig(4, 1, "XYZ"))


def test_configs_are_named():
    assert set(CONFIGS) == {"paper", "lite"}


def test_branch_images_do_not_alter_returned_features():
    net = build(TINY).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        plain = net(x)
        full = net(x, branch_images=True)
    assert torch.equal(plain.local_features, full.local_features)
    assert torch.equal(plain.global_features, full.global_features)
    assert torch.equal(plain.image, full.image)


def test_training_with_branch_images_backpropagates():
    net = build(TINY)
    out = net(torch.rand(1, 3, 16, 16), branch_images=True)
    (out.image.mean() + out.local_image.mean() + out.global_image.mean()).backward()
    assert net.local_branch.head[0].weight.grad is not None


def test_blocks_per_scale():
    net = build(NetConfig(width=4, blocks=(1, 2, 3))).eval()
    assert [len(s.blocks) for s in (net.local_branch.enc1, net.local_branch.enc2, net.local_branch.enc3)] == [1, 2, 3]
    assert [len(s.blocks) for s in (net.global_branch.enc1, net.global_branch.enc2, net.global_branch.enc3)] == [1, 2, 3]
    assert NetConfig(width=4, blocks=[1, 2, 3]) == NetConfig(width=4, blocks=(1, 2, 3))  # a checkpoint's list
    assert NetConfig(width=4, blocks=2).per_scale() == (2, 2, 2)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 13, 9)).image.shape == (1, 3, 13, 9)


def test_deepen_keeps_the_output_and_the_new_blocks_can_learn():
    torch.manual_seed(0)
    net = build(TINY).eval()
    with torch.no_grad():  # a trained net has nonzero weights everywhere; so must the test's
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    deep = deepen(net, (1, 2, 3)).eval()
    assert deep.config.blocks == (1, 2, 3)
    assert count_parameters(deep) > count_parameters(net)
    x = torch.rand(2, 3, 16, 20)
    with torch.no_grad():
        assert torch.equal(deep(x).image, net(x).image)
    deep.train()
    (deep(x).image - x.flip(-1)).square().mean().backward()
    assert deep.local_branch.enc3.blocks[2].body[-1].weight.grad.abs().sum() > 0  # zeroed, but not stuck
    with pytest.raises(ValueError, match="only adds blocks"):
        deepen(deep, (1, 1, 1))


@pytest.mark.parametrize("blocks", [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 3)])
def test_receptive_radius_is_how_far_the_output_depends_on_the_input(blocks):
    config = NetConfig(width=4, blocks=blocks)
    torch.manual_seed(0)
    net = DBAFNet(config).double().eval()
    for p in net.parameters():  # no zero weights, so every dependency shows in the gradient
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(1, 3, 160, 160, dtype=torch.double, requires_grad=True)
    net(x).image[0, :, 80, 80].sum().backward()
    reached = (x.grad.abs().sum((0, 1)) > 0).nonzero()
    assert int((reached - 80).abs().max()) == receptive_radius(config)
