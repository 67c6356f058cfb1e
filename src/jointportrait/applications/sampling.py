"""Shared plumbing of the channel-wise inpainting applications (paper Sec. 4).

Every application is one call of :class:`~jointportrait.pipelines.JointPortraitPipeline`
with a choice of known domains and masks; this module holds what they share:
the model's native resolution, a temporary scheduler with another timestep
spacing, which inpainting form a model supports, and decoding only the domain a
task asks for (the pipeline is called with ``output_type="latent"``, so depth
estimation never pays for decoding an RGB image it throws away).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import PIL.Image
import torch

from jointportrait.latent_codec import decode_depth, decode_rgb

TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")


def native_resolution(pipe) -> int:
    """The training resolution of the model's denoiser (512 for SD 1.5, 64 for the tiny model)."""
    return int(pipe.unet.config.sample_size) * pipe.vae_scale_factor


def resolve_inpaint_mode(pipe, inpaint_mode: str = "auto") -> str:
    """``"auto"`` -> ``"conditioning"`` for an 18-channel model, else the training-free ``"replacement"``."""
    if inpaint_mode != "auto":
        return inpaint_mode
    return "conditioning" if pipe.is_inpainting_model else "replacement"


def with_timestep_spacing(scheduler, spacing: str):
    """A copy of ``scheduler`` with ``timestep_spacing=spacing`` (see :func:`timestep_spacing`)."""
    if spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"`timestep_spacing` must be one of {TIMESTEP_SPACINGS}, got {spacing!r}")
    return type(scheduler).from_config(scheduler.config, timestep_spacing=spacing)


@contextlib.contextmanager
def timestep_spacing(pipe, spacing: str | None) -> Iterator[None]:
    """Run the block with the pipeline's scheduler rebuilt with ``timestep_spacing=spacing`` (None: as is).

    Few-step sampling from a clean input works best with ``"trailing"`` spacing, which
    starts at the last training timestep (Lin et al. 2024, "Common diffusion noise
    schedules and sample steps are flawed"; used by Marigold's LCM/DDIM settings).
    """
    if spacing is None:
        yield
        return
    original = pipe.scheduler
    pipe.scheduler = with_timestep_spacing(original, spacing)
    try:
        yield
    finally:
        pipe.scheduler = original


def decode_depths(pipe, depth_latents: torch.Tensor) -> np.ndarray:
    """Depth latents ``(N, 4, h, w)`` -> relative depth ``(N, H, W)`` float32 in [0, 1]."""
    return decode_depth(pipe.vae, depth_latents)[:, 0].float().cpu().numpy()


def decode_images(pipe, rgb_latents: torch.Tensor) -> list[PIL.Image.Image]:
    """RGB latents ``(N, 4, h, w)`` -> PIL images."""
    return pipe.image_processor.postprocess(decode_rgb(pipe.vae, rgb_latents), output_type="pil")
