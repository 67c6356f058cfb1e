"""Channel widening (paper Sec. 3.3): zero input weights, copied output weights."""

import pytest
import torch

from jointportrait import widen_unet
from jointportrait.loading import tiny_base_components


@pytest.fixture(scope="module")
def base_unet():
    unet = tiny_base_components(seed=1).unet.eval()
    with torch.no_grad():  # give conv_out non-trivial values (diffusers zero-inits nothing here, but be explicit)
        unet.conv_out.bias.copy_(torch.linspace(-0.5, 0.5, 4))
    return unet


def _forward(unet, x, t=500):
    ehs = torch.randn(x.shape[0], 1, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=ehs).sample


def test_widened_weights_are_zero_and_copied(base_unet):
    wide = widen_unet(base_unet, 8, 8)
    w_in = wide.conv_in.weight
    assert w_in.shape[1] == 8
    assert torch.equal(w_in[:, :4], base_unet.conv_in.weight)
    assert torch.count_nonzero(w_in[:, 4:]) == 0
    assert torch.equal(wide.conv_out.weight[4:], base_unet.conv_out.weight)
    assert torch.equal(wide.conv_out.bias[4:], base_unet.conv_out.bias)
    # the original is untouched and the result is a plain UNet2DConditionModel config-wise
    assert base_unet.config.in_channels == 4 and wide.config.in_channels == 8 and wide.config.out_channels == 8


def test_fresh_widening_4_to_8_reproduces_the_original_output(base_unet):
    g = torch.Generator().manual_seed(0)
    z_rgb = torch.randn(2, 4, 8, 8, generator=g)
    wide = widen_unet(base_unet, 8, 8).eval()
    reference = _forward(base_unet, z_rgb)
    for z_depth in (torch.zeros(2, 4, 8, 8), torch.randn(2, 4, 8, 8, generator=g) * 10):
        out = _forward(wide, torch.cat([z_rgb, z_depth], 1))
        assert torch.equal(out[:, :4], reference)  # RGB half = original exactly, for any depth input
        assert torch.equal(out[:, 4:], out[:, :4])  # depth half = RGB half, bit for bit


def test_widening_8_to_18_keeps_the_function(base_unet):
    g = torch.Generator().manual_seed(5)
    stage1 = widen_unet(base_unet, 8, 8).eval()
    stage2 = widen_unet(stage1, 18, 8).eval()
    x8 = torch.randn(1, 8, 8, 8, generator=g)
    extra = torch.randn(1, 10, 8, 8, generator=g)
    assert torch.equal(_forward(stage2, torch.cat([x8, extra], 1)), _forward(stage1, x8))


def test_narrowing_is_refused(base_unet):
    with pytest.raises(ValueError, match="narrow"):
        widen_unet(widen_unet(base_unet, 8, 8), 4, 8)


def test_widening_a_unet_built_with_default_channels():
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=8, layers_per_block=1)  # in/out channels left at their defaults
    wide = widen_unet(unet, 8, 8)
    assert (wide.config.in_channels, wide.config.out_channels) == (8, 8)
    assert wide.conv_in.weight.shape[1] == 8
