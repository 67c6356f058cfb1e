"""Channel widening of the SD UNet (paper Sec. 3.3, "Diffusion Backbone"; DESIGN.md).

The joint denoiser sees ``[z_rgb, z_depth]`` (8 channels) and, from the
inpainting stage on, also masks and masked latents (18 channels). Widening keeps
the pretrained model's function: the added input weights are zero, so the
widened model ignores the new channels until it learns to use them; the added
output channels copy the original output weights and bias, so the depth half
starts as a copy of the RGB prediction.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel


@torch.no_grad()
def widen_unet(unet: UNet2DConditionModel, in_channels: int, out_channels: int) -> UNet2DConditionModel:
    """Return a new ``UNet2DConditionModel`` with ``in_channels`` inputs and ``out_channels`` outputs.

    Input channels ``[0, old_in)`` keep their weights, added ones are zero.
    Output channel ``j >= old_out`` copies the weights and bias of channel
    ``j % old_out``. Narrowing is refused: it would drop trained weights.
    """
    old_in, old_out = unet.config.in_channels, unet.config.out_channels
    if in_channels < old_in or out_channels < old_out:
        raise ValueError(
            f"widen_unet only widens: ({old_in}, {old_out}) -> ({in_channels}, {out_channels}) would narrow"
        )
    # diffusers lists constructor defaults in `_use_default_values` and from_config would re-apply them,
    # overriding the new widths of a UNet built with default channels.
    config = {k: v for k, v in unet.config.items() if k != "_use_default_values"}
    config["in_channels"] = in_channels
    config["out_channels"] = out_channels
    widened = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()

    conv_in_w = state.pop("conv_in.weight")  # (C, old_in, k, k)
    new_in_w = conv_in_w.new_zeros((conv_in_w.shape[0], in_channels, *conv_in_w.shape[2:]))
    new_in_w[:, :old_in] = conv_in_w
    state["conv_in.weight"] = new_in_w

    copy_from = torch.arange(out_channels) % old_out
    state["conv_out.weight"] = state["conv_out.weight"][copy_from].clone()  # (out, C, k, k)
    state["conv_out.bias"] = state["conv_out.bias"][copy_from].clone()

    widened.load_state_dict(state, strict=True)
    widened = widened.to(device=unet.device)
    return widened if widened.dtype == unet.dtype else widened.to(dtype=unet.dtype)
