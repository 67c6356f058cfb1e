"""The joint denoiser: channel-widened UNet + ReferenceNet (paper Sec. 3.2-3.3).

The denoiser takes ``[z_rgb, z_depth]`` (8 channels, stage 1) or the stage-2
inpainting input (18 channels, DESIGN.md order) and predicts the noise (or v)
of both domains, ``[eps_rgb, eps_depth]`` (eq. 5). Whether a model is an
inpainting (stage-2) model is read from its input width in one place,
:attr:`JointDenoiser.is_inpainting`.
"""

from __future__ import annotations

from diffusers import UNet2DConditionModel

from jointportrait.conditioning import STAGE1_CHANNELS, STAGE2_CHANNELS
from jointportrait.models.reference_denoiser import ReferenceNetDenoiser


class JointDenoiser(ReferenceNetDenoiser):
    """``unet`` (8 or 18 input channels, 8 output) reading from ``reference_unet`` (4 input channels)."""

    def __init__(self, unet: UNet2DConditionModel, reference_unet: UNet2DConditionModel) -> None:
        if unet.config.out_channels != 2 * reference_unet.config.in_channels:
            raise ValueError(
                f"denoiser outputs {unet.config.out_channels} channels; expected twice the ReferenceNet's "
                f"{reference_unet.config.in_channels} latent channels ([eps_rgb, eps_depth])"
            )
        super().__init__(unet, reference_unet)

    @property
    def is_inpainting(self) -> bool:
        """True for the 18-channel stage-2 denoiser (masks and masked latents as input)."""
        return is_inpainting_unet(self.unet)


def is_inpainting_unet(unet: UNet2DConditionModel) -> bool:
    """True for a joint denoiser UNet with the stage-2 input; an error for a width that is neither stage."""
    channels = unet.config.in_channels
    if channels not in (STAGE1_CHANNELS, STAGE2_CHANNELS):
        raise ValueError(f"the denoiser has {channels} input channels; expected {STAGE1_CHANNELS} or {STAGE2_CHANNELS}")
    return channels == STAGE2_CHANNELS
