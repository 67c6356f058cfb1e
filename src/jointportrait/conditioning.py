"""Inputs of the inpainting fine-tune (paper Sec. 4; DESIGN.md "Fixed conventions").

From stage 2 on the denoiser input is
``[z_rgb(4), z_depth(4), mask_rgb(1), mask_depth(1), masked_z_rgb(4), masked_z_depth(4)]``.
A mask is 1 where the model generates and 0 where it keeps the input. As in
diffusers' inpainting convention the masked input is the input with the
generated region blanked (set to 0, mid-grey / mid-depth) and then VAE-encoded;
masks are resized to the latent grid with nearest-neighbour sampling.

The task -> mask table :data:`TASKS` (Sec. 4) serves training (the stage-2
mask sampler) and the applications alike: depth estimation = (rgb 0, depth 1);
depth-to-image = (1, 0); joint generation = (1, 1); editing = a spatial RGB
mask with a given depth (``rgb_editing``), or the same spatial mask on both
domains (``joint_editing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from jointportrait.latent_codec import encode_blank, encode_depth, encode_rgb

STAGE1_CHANNELS = 8
STAGE2_CHANNELS = 18

GENERATE, KEEP = 1.0, 0.0  # mask values: 1 = generate, 0 = keep
MaskRule = Literal["generate", "keep", "spatial"]


@dataclass(frozen=True)
class Task:
    """Which domain a task generates: each mask is all ``generate``, all ``keep``, or a ``spatial`` mask."""

    rgb: MaskRule
    depth: MaskRule

    @property
    def needs_spatial_mask(self) -> bool:
        return "spatial" in (self.rgb, self.depth)

    def masks(self, spatial=None, like: torch.Tensor | None = None) -> tuple:
        """``(rgb_mask, depth_mask)``: scalars for whole-domain rules, ``spatial`` (a tensor or an
        array) where the rule says so.

        With ``like`` (a tensor of the mask's shape) whole-domain masks are tensors of that shape.
        """
        def one(rule: MaskRule):
            if rule == "spatial":
                if spatial is None:
                    raise ValueError("this task needs a spatial mask")
                return spatial
            value = GENERATE if rule == "generate" else KEEP
            return value if like is None else torch.full_like(like, value)

        return one(self.rgb), one(self.depth)


# task name -> masks (paper Sec. 4); one table for training and the applications
TASKS: dict[str, Task] = {
    "depth_estimation": Task(rgb="keep", depth="generate"),
    "depth_to_image": Task(rgb="generate", depth="keep"),
    "joint_generation": Task(rgb="generate", depth="generate"),
    "rgb_editing": Task(rgb="spatial", depth="keep"),
    "joint_editing": Task(rgb="spatial", depth="spatial"),
}


@dataclass
class InpaintingCondition:
    """The 10 conditioning channels ``[mask_rgb, mask_depth, masked_z_rgb, masked_z_depth]``."""

    mask_rgb: torch.Tensor  # (B, 1, h, w) on the latent grid
    mask_depth: torch.Tensor  # (B, 1, h, w)
    masked_rgb_latents: torch.Tensor  # (B, 4, h, w)
    masked_depth_latents: torch.Tensor  # (B, 4, h, w)

    def as_channels(self) -> torch.Tensor:
        return torch.cat(
            [self.mask_rgb, self.mask_depth, self.masked_rgb_latents, self.masked_depth_latents], dim=1
        )  # (B, 10, h, w)

    def select(self, index: torch.Tensor) -> InpaintingCondition:
        """Rows ``index`` of every tensor (one row per sample drawn)."""
        return InpaintingCondition(self.mask_rgb[index], self.mask_depth[index],
                                   self.masked_rgb_latents[index], self.masked_depth_latents[index])


def latent_mask(mask: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel mask ``(B, 1, H, W)`` in {0, 1} -> latent-grid mask ``(B, 1, h, w)`` (nearest)."""
    return F.interpolate(mask.float(), size=latent_hw, mode="nearest")


def build_inpainting_condition(
    vae: AutoencoderKL,
    rgb: torch.Tensor,
    depth_normalized: torch.Tensor,
    rgb_mask: torch.Tensor,
    depth_mask: torch.Tensor,
    rgb_latents: torch.Tensor | None = None,
    depth_latents: torch.Tensor | None = None,
) -> InpaintingCondition:
    """Conditioning for images ``(B, 3, H, W)`` and normalised depth ``(B, 1, H, W)``.

    ``rgb_mask``/``depth_mask`` are ``(B, 1, H, W)`` with 1 = generate. A mask
    that is 1 everywhere blanks its domain entirely (nothing is known).

    Rows whose mask is all 1 share one latent of a blank input (encoded once per VAE and size,
    :func:`~jointportrait.latent_codec.encode_blank`). ``rgb_latents``/
    ``depth_latents`` (optional, ``(B, 4, h, w)``) are the latents of the
    unmasked inputs when the caller has them already (training, or an image that
    is also the reference); rows whose mask is all 0 then reuse them. Only the
    other rows are encoded; the result is the same as encoding every row (the
    VAE normalises each sample on its own).
    """
    keep_rgb = (rgb_mask < 0.5).to(rgb.dtype)
    keep_depth = (depth_mask < 0.5).to(depth_normalized.dtype)
    masked_rgb = _masked_latents(vae, rgb, keep_rgb, rgb_latents, encode_rgb)
    masked_depth = _masked_latents(vae, depth_normalized, keep_depth, depth_latents, encode_depth)
    hw = masked_rgb.shape[-2:]
    dtype = masked_rgb.dtype
    return InpaintingCondition(
        latent_mask(rgb_mask, hw).to(dtype), latent_mask(depth_mask, hw).to(dtype), masked_rgb, masked_depth
    )


def _masked_latents(vae: AutoencoderKL, x: torch.Tensor, keep: torch.Tensor, latents: torch.Tensor | None,
                    encode) -> torch.Tensor:
    """``encode(x * keep)`` row by row, without encoding what is known: rows kept whole reuse ``latents``
    (= ``encode(x)``, when given) and blanked rows share one encoding of an all-zero input."""
    flat = keep.flatten(1)
    blank = flat.max(dim=1).values < 0.5  # (B,)
    whole = flat.min(dim=1).values > 0.5 if latents is not None else torch.zeros_like(blank)
    todo = ~(whole | blank)
    if bool(todo.all()):
        return encode(vae, x * keep)
    rows = {}
    if bool(todo.any()):
        rows["todo"] = encode(vae, (x * keep)[todo])
    if bool(blank.any()):
        # a blank RGB image and a blank depth map are both an all-zero 3-channel input
        rows["blank"] = encode_blank(vae, *x.shape[-2:])
    if bool(whole.any()):
        rows["whole"] = latents.to(device=vae.device, dtype=vae.dtype)[whole.to(latents.device)]
    first = next(iter(rows.values()))
    out = first.new_empty((x.shape[0], *first.shape[1:]))
    for name, mask in (("todo", todo), ("blank", blank), ("whole", whole)):
        if name in rows:
            out[mask.to(out.device)] = rows[name]
    return out


def denoiser_input(noisy_latents: torch.Tensor, condition: InpaintingCondition | None) -> torch.Tensor:
    """``[z_rgb, z_depth]`` (B, 8, h, w), plus the conditioning channels when given -> (B, 18, h, w)."""
    if condition is None:
        return noisy_latents
    return torch.cat([noisy_latents, condition.as_channels().to(noisy_latents.dtype)], dim=1)
