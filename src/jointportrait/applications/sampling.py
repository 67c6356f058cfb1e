"""Shared plumbing of the channel-wise inpainting applications (paper Sec. 4).

Every application is one call of :class:`~jointportrait.pipelines.JointPortraitPipeline`
with a choice of known domains and masks; this module holds what they share:
the model's native resolution, a temporary scheduler with another timestep
spacing, and which inpainting form a model supports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")


def native_resolution(pipe) -> int:
    """The training resolution of the model's denoiser (512 for SD 1.5, 64 for the tiny model)."""
    return int(pipe.unet.config.sample_size) * pipe.vae_scale_factor


def resolve_inpaint_mode(pipe, inpaint_mode: str = "auto") -> str:
    """``"auto"`` -> ``"conditioning"`` for an 18-channel model, else the training-free ``"replacement"``."""
    if inpaint_mode != "auto":
        return inpaint_mode
    return "conditioning" if pipe.is_inpainting_model else "replacement"


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
    if spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"`timestep_spacing` must be one of {TIMESTEP_SPACINGS}, got {spacing!r}")
    original = pipe.scheduler
    pipe.scheduler = type(original).from_config(original.config, timestep_spacing=spacing)
    try:
        yield
    finally:
        pipe.scheduler = original
