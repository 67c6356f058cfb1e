"""The paper's baselines and ablations as models (Sec. 5.2 "Benefit of Joint Learning", Sec. 9 "Ablation Studies").

* "w/o joint learning" (Sec. 5.2, Tables 1-2): two *separate* conditional
  networks, image -> depth and depth -> image. Each is the SD UNet widened to
  8 input channels ``[noisy target latent (4), condition latent (4)]`` and 4
  output channels (the target's noise), the condition latent concatenated to
  the input as in SD's inpainting/depth-conditioned models. Decision: both keep
  the ReferenceNet (same reference attention as the joint model). The paper's
  claim is about *joint* learning; keeping the identity path identical makes
  the joint/separate comparison differ in that one respect only, and a
  depth -> image network without the reference could not recover the subject's
  appearance that Table 2 measures against.
* "w/o ReferenceNet" (Sec. 9, Fig. 9): the joint 8-channel denoiser with the
  reference latent concatenated to its input instead,
  ``[z_rgb(4), z_depth(4), z_ref(4)]`` = 12 channels -> ``[eps_rgb, eps_depth]``;
  no ReferenceNet. The CLIP image embedding (if any) stays, as in the full model.

Widening follows :func:`~jointportrait.models.widen.widen_unet`: new input
channels start at zero, so every baseline starts as the pretrained SD UNet on
its first four channels. The losses are in :mod:`jointportrait.objective`
beside eq. 5, the samplers are pipelines (:mod:`jointportrait.pipelines`).
"""

from __future__ import annotations

import copy

import torch
from diffusers import UNet2DConditionModel

from jointportrait.errors import InputError
from jointportrait.models.components import BaseComponents, ModelComponents
from jointportrait.models.reference_denoiser import ReferenceNetDenoiser
from jointportrait.models.widen import widen_unet

LATENT = 4
IMAGE_TO_DEPTH = "image_to_depth"
DEPTH_TO_IMAGE = "depth_to_image"
CONCAT_REFERENCE = "concat_reference"
DIRECTIONS = (IMAGE_TO_DEPTH, DEPTH_TO_IMAGE)
BASELINE_KINDS = (IMAGE_TO_DEPTH, DEPTH_TO_IMAGE, CONCAT_REFERENCE)
PAPER_NAMES = {
    IMAGE_TO_DEPTH: "w/o Joint Learning (image -> depth)",
    DEPTH_TO_IMAGE: "w/o Joint Learning (depth -> image)",
    CONCAT_REFERENCE: "w/o ReferenceNet",
}


class ConditionalDenoiser(ReferenceNetDenoiser):
    """"w/o joint learning": ``[noisy target, condition]`` (B, 8, h, w) -> target noise (B, 4, h, w).

    ``direction`` is ``"image_to_depth"`` (target depth, condition RGB) or
    ``"depth_to_image"`` (target RGB, condition depth). The ReferenceNet is
    wired exactly as in :class:`~jointportrait.models.JointDenoiser`.
    """

    def __init__(self, unet: UNet2DConditionModel, reference_unet: UNet2DConditionModel, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be {IMAGE_TO_DEPTH!r} or {DEPTH_TO_IMAGE!r}, got {direction!r}")
        c = reference_unet.config.in_channels
        if unet.config.in_channels != 2 * c or unet.config.out_channels != c:
            raise ValueError(f"a conditional denoiser maps {2 * c} -> {c} channels, got "
                             f"{unet.config.in_channels} -> {unet.config.out_channels}")
        super().__init__(unet, reference_unet)
        self.direction = direction


class ConcatReferenceDenoiser(torch.nn.Module):
    """"w/o ReferenceNet": ``[z_rgb, z_depth]`` (B, 8, h, w) + reference latent (B, 4, h, w) -> (B, 8, h, w)."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        if unet.config.in_channels != 3 * LATENT or unet.config.out_channels != 2 * LATENT:
            raise ValueError(f"the concat-reference denoiser maps {3 * LATENT} -> {2 * LATENT} channels, got "
                             f"{unet.config.in_channels} -> {unet.config.out_channels}")
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                reference_latents: torch.Tensor, reference_keep: torch.Tensor | None = None) -> torch.Tensor:
        ref = reference_latents.to(sample.dtype)
        if reference_keep is not None:
            ref = ref * reference_keep.view(-1, 1, 1, 1).to(ref.dtype)  # dropped reference = zero latent
        x = torch.cat([sample, ref], dim=1)  # (B, 12, h, w)
        return self.unet(x, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


def baseline_components_from_base(base: BaseComponents, kind: str) -> ModelComponents:
    """A baseline's components from base SD components: the widened denoiser and, for the separate
    networks, a ReferenceNet copied from the base UNet."""
    if kind not in BASELINE_KINDS:
        raise ValueError(f"kind must be one of {BASELINE_KINDS}, got {kind!r}")
    unet = base.unet
    if unet.config.in_channels != LATENT or unet.config.out_channels != LATENT:
        raise InputError(f"base UNet has {unet.config.in_channels}/{unet.config.out_channels} channels; "
                         "expected an SD-style 4/4 UNet")
    if kind == CONCAT_REFERENCE:
        denoiser, reference_unet = widen_unet(unet, 3 * LATENT, 2 * LATENT), None
    else:
        denoiser, reference_unet = widen_unet(unet, 2 * LATENT, LATENT), copy.deepcopy(unet)
    return ModelComponents(vae=base.vae, unet=denoiser, scheduler=base.scheduler, reference_unet=reference_unet,
                           image_encoder=base.image_encoder)


def build_baseline_model(kind: str, components: ModelComponents) -> torch.nn.Module:
    """The trainable module of a baseline (what the trainer optimises and wraps with accelerate)."""
    if kind == CONCAT_REFERENCE:
        return ConcatReferenceDenoiser(components.unet)
    return ConditionalDenoiser(components.unet, components.reference_unet, kind)
