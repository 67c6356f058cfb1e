"""Shared plumbing of the channel-wise inpainting applications (paper Sec. 4).

Every application is one call of :class:`~jointportrait.pipelines.JointPortraitPipeline`
with a choice of known domains and masks (the task table
:data:`jointportrait.conditioning.TASKS`); the pipeline itself takes the
timestep spacing and the domains to decode. This module holds the model's
native resolution, the default processing size of every application.
"""

from __future__ import annotations


def native_resolution(pipe) -> int:
    """The training resolution of the model's denoiser (512 for SD 1.5, 64 for the tiny model)."""
    return int(pipe.unet.config.sample_size) * pipe.vae_scale_factor
