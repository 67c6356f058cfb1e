"""The layout of the shipped pretrained base: Stable Diffusion 1.5 scaled down to 64 px faces.

The paper starts every method from a pretrained SD 1.5 (Sec. 3.3, 5.2). No SD
weights can be had here, so the project trains a small stand-in once on RGB
faces only (``model.kind: base``, docs/REPRODUCTION.md) and ships it. Its layout
keeps SD 1.5's choices at a smaller scale:

- VAE: an ``AutoencoderKL`` with four resolutions, so SD's downsampling factor
  of 8 (64 px -> 8x8x4 latents; SD 1.5: 512 px -> 64x64x4), one ResNet block per
  level, widths (32, 64, 128, 128) against SD's (128, 256, 512, 512).
- UNet: a ``UNet2DConditionModel`` with cross-attention transformer blocks in
  every level but the lowest (SD's pattern), widths (64, 128, 128) against SD's
  (320, 640, 1280, 1280), one ResNet block per level, 64-d cross-attention.
  The base is trained with the null (zero) embedding, since there is no text or
  image encoder; the ReferenceNet attention of the joint model reads the
  spatial self-attention layers of these blocks.

The weights are a function of ``seed`` alone (a forked RNG; the caller's global
RNG is left as it was).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

MINI_UNET_WIDTHS = (64, 128, 128)
MINI_VAE_WIDTHS = (32, 64, 128, 128)
MINI_CROSS_ATTENTION_DIM = 64
MINI_DOWNSAMPLE = 2 ** (len(MINI_VAE_WIDTHS) - 1)  # 8, as SD's VAE


def mini_sd_unet(sample_size: int = 8, seed: int = 0) -> UNet2DConditionModel:
    """The base's 4-channel UNet for ``sample_size`` x ``sample_size`` latents."""
    levels = len(MINI_UNET_WIDTHS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel(
            sample_size=sample_size, in_channels=4, out_channels=4, block_out_channels=MINI_UNET_WIDTHS,
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
            cross_attention_dim=MINI_CROSS_ATTENTION_DIM, attention_head_dim=8, norm_num_groups=32,
        )


def mini_sd_vae(sample_size: int = 64, seed: int = 0) -> AutoencoderKL:
    """The base's autoencoder for ``sample_size`` px images (latents ``sample_size / 8``)."""
    levels = len(MINI_VAE_WIDTHS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=MINI_VAE_WIDTHS,
            layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=sample_size,
        )
