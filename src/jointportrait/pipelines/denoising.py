"""The reverse diffusion loop shared by every pipeline of the project (paper Sec. 3.1, 4).

One function, :func:`denoise`, runs a diffusers scheduler from initial latents
to clean latents with classifier-free guidance on the reference (rows
``[uncond; cond]``) and a :class:`KnownDomains` strategy that says how what is
known enters each step: as extra input channels (:class:`ChannelConditioning`:
the stage-2 masks and masked latents, or the condition latent of a separate
conditional network) or by replacing the known latent after each step
(:class:`LatentReplacement`, training-free inpainting of an 8-channel model).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch
from diffusers.schedulers import SchedulerMixin

TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")


def scheduler_with_spacing(scheduler: SchedulerMixin, timestep_spacing: str | None) -> SchedulerMixin:
    """``scheduler`` itself (None), or a copy with ``timestep_spacing`` for one call.

    Few-step sampling from a clean input works best with ``"trailing"`` spacing, which starts
    at the last training timestep (Lin et al. 2024, "Common diffusion noise schedules and
    sample steps are flawed"; used by Marigold's DDIM/LCM settings).
    """
    if timestep_spacing is None:
        return scheduler
    if timestep_spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"`timestep_spacing` must be one of {TIMESTEP_SPACINGS}, got {timestep_spacing!r}")
    return type(scheduler).from_config(scheduler.config, timestep_spacing=timestep_spacing)


def guidance_keep(batch: int, device: torch.device) -> torch.Tensor:
    """Reference ``keep`` flags of a guided batch ``[uncond (batch); cond (batch)]``: ``(2 * batch,)`` bool."""
    return torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device)


def guided(pred: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance on the reference: ``uncond + s (cond - uncond)`` for a ``[uncond; cond]`` batch."""
    uncond, cond = pred.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


class KnownDomains:
    """How the known part of the latents enters the loop; this base knows nothing (joint generation)."""

    def initial(self, latents: torch.Tensor) -> torch.Tensor:
        """The latents before the first model call."""
        return latents

    def model_input(self, model_in: torch.Tensor) -> torch.Tensor:
        """The denoiser input for the scaled latents ``model_in`` (guided rows included)."""
        return model_in

    def after_step(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        """The latents after scheduler step ``step`` (0-based)."""
        return latents


class ChannelConditioning(KnownDomains):
    """Known domains as extra input channels ``(N, C, h, w)``, repeated for the guided rows."""

    def __init__(self, channels: torch.Tensor, guided_rows: bool) -> None:
        self.channels = torch.cat([channels] * 2) if guided_rows else channels

    def model_input(self, model_in: torch.Tensor) -> torch.Tensor:
        return torch.cat([model_in, self.channels.to(model_in.dtype)], dim=1)


class LatentReplacement(KnownDomains):
    """Training-free inpainting: where ``generate_mask`` is 0 the latents are the known latent noised to the
    level of the coming model call (the same noise throughout): before the first call at the first
    timestep, after each step at the next one, and the clean known latent after the last step."""

    def __init__(self, known: torch.Tensor, generate_mask: torch.Tensor, noise: torch.Tensor,
                 scheduler: SchedulerMixin, timesteps: torch.Tensor) -> None:
        self.known, self.generate_mask, self.noise = known, generate_mask, noise  # (N, 8, h, w) each
        self.scheduler, self.timesteps = scheduler, timesteps

    def _paste(self, latents: torch.Tensor, step: int | None) -> torch.Tensor:
        """Known latent at timestep ``timesteps[step]`` (clean when ``step`` is None) pasted into ``latents``."""
        known = self.known
        if step is not None:
            known = self.scheduler.add_noise(known, self.noise, self.timesteps[step : step + 1])
        return self.generate_mask * latents + (1.0 - self.generate_mask) * known

    def initial(self, latents: torch.Tensor) -> torch.Tensor:
        # the first model call must already see the known domain (one-step sampling sees nothing else)
        return self._paste(latents, 0)

    def after_step(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        return self._paste(latents, step + 1 if step + 1 < len(self.timesteps) else None)


def scheduler_step_kwargs(scheduler: SchedulerMixin, generator) -> dict:
    """``generator`` for schedulers whose step draws noise (DDPM, Euler ancestral, ...)."""
    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


def denoise(
    scheduler: SchedulerMixin,
    latents: torch.Tensor,
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    known: KnownDomains,
    guidance_scale: float,
    generator: torch.Generator | list[torch.Generator] | None,
    progress: Callable[[Iterable], Iterable] = iter,
) -> torch.Tensor:
    """Run ``scheduler`` (timesteps already set) from ``latents`` ``(N, C, h, w)`` to clean latents.

    ``predict(model_in, t)`` is the denoiser on the model input (``2N`` rows when
    ``guidance_scale > 1``: the first half unconditional).
    """
    do_cfg = guidance_scale > 1.0
    step_kwargs = scheduler_step_kwargs(scheduler, generator)
    latents = known.initial(latents)
    for i, t in enumerate(progress(scheduler.timesteps)):
        model_in = torch.cat([latents] * 2) if do_cfg else latents
        model_in = known.model_input(scheduler.scale_model_input(model_in, t))
        pred = predict(model_in, t)
        if do_cfg:
            pred = guided(pred, guidance_scale)
        latents = scheduler.step(pred, t, latents, **step_kwargs, return_dict=False)[0]
        latents = known.after_step(latents, i)
    return latents
