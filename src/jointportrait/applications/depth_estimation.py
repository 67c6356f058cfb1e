"""Monocular depth estimation: image -> relative depth (paper Sec. 4 and 5.3).

Channel-wise inpainting with masks (rgb 0, depth 1): the image is known, the
depth is generated. The reference defaults to the input image itself (the
identity is the photo's own). Options follow Marigold (Ke et al. 2024): few
steps with trailing timestep spacing, an ensemble of N samples merged by
aligned per-pixel median with an uncertainty map
(:mod:`jointportrait.applications.ensemble`), and a processing resolution with
resize or pad to a multiple of 8 and back to the input size
(:mod:`jointportrait.applications.resolution`).

A model fine-tuned into a one-step estimator (``pipe.is_one_step_depth``,
``model.kind: one_step_depth``, in the manner of E2E-FT) is deterministic: it
takes the one step it was trained on, from zero latents at the last timestep,
and an ensemble would repeat the same map, so the step and ensemble options do
not apply to it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.applications.ensemble import ensemble_depths, foreground_mask
from jointportrait.applications.resolution import ProcessingPlan, plan_processing
from jointportrait.applications.sampling import native_resolution
from jointportrait.conditioning import TASKS

logger = logging.getLogger(__name__)


@dataclass
class DepthEstimate:
    depth: np.ndarray  # (H, W) float32 in [0, 1], 0 = near, at the input size
    uncertainty: np.ndarray | None  # (H, W) float32, ensemble spread (None for a single sample)
    members: np.ndarray  # (N, h, w) float32, the samples at the processing size


VAE_TILING = ("auto", "on", "off")


VAE_TILE = 512  # pixels: the tile side of the tiled VAE (SD's VAE works at 512 px)


@contextlib.contextmanager
def vae_tiling(vae, mode: str, model_hw: tuple[int, int], tile: int = VAE_TILE) -> Iterator[bool]:
    """diffusers' tiled VAE (``enable_tiling``) with ``tile``-pixel tiles for the duration of a call:
    ``"on"``, ``"off"``, or ``"auto"`` for canvases of more than four tiles' area (memory then stays
    bounded; tiles overlap and are blended, so a tiled result differs slightly from an untiled one).
    Yields whether it tiles; the VAE's own tiling settings are restored afterwards."""
    if mode not in VAE_TILING:
        raise ValueError(f"`vae_tiling` must be one of {VAE_TILING}, got {mode!r}")
    tiled = mode == "on" or (mode == "auto" and model_hw[0] * model_hw[1] > 4 * tile * tile)
    if not tiled:
        yield False
        return
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    saved = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)
    vae.enable_tiling()
    vae.tile_sample_min_size, vae.tile_latent_min_size = tile, tile // factor
    try:
        yield True
    finally:
        vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = saved


@torch.no_grad()
def estimate_depth(
    pipe,
    image: PIL.Image.Image,
    reference: PIL.Image.Image | None = None,
    num_inference_steps: int = 10,
    ensemble_size: int = 1,
    processing_resolution: int | None = None,
    resize_mode: str = "resize",
    spacing: str | None = "trailing",
    inpaint_mode: str = "auto",
    generator: torch.Generator | None = None,
    vae_tiling: str = "auto",
) -> DepthEstimate:
    """Estimate the relative depth of ``image`` with a :class:`JointPortraitPipeline`.

    Args:
        pipe: the joint pipeline (18-channel stage-2 model, or 8-channel with replacement).
        image: the RGB photo (PIL, any size).
        reference: identity reference; default: ``image``.
        num_inference_steps: denoising steps per sample.
        ensemble_size: samples merged by aligned median (1 = no ensemble).
        processing_resolution: longer side while sampling; None = the model's native size, 0 = input size.
        resize_mode: "resize" or "pad" to a multiple of 8.
        spacing: scheduler timestep spacing for this call (None keeps the model's).
        inpaint_mode: "auto", "conditioning" or "replacement" (see the pipeline).
        generator: torch generator for determinism.
        vae_tiling: "auto", "on" or "off" (see :func:`vae_tiling`).
    """
    return estimate_depths(pipe, [image], [reference], num_inference_steps, ensemble_size, processing_resolution,
                           resize_mode, spacing, inpaint_mode, [generator], vae_tiling=vae_tiling)[0]


@torch.no_grad()
def estimate_depths(
    pipe,
    images: Sequence[PIL.Image.Image],
    references: Sequence[PIL.Image.Image | None] | None = None,
    num_inference_steps: int = 10,
    ensemble_size: int = 1,
    processing_resolution: int | None = None,
    resize_mode: str = "resize",
    spacing: str | None = "trailing",
    inpaint_mode: str = "auto",
    generators: Sequence[torch.Generator | None] | None = None,
    batch_size: int = 1,
    decode_chunk_size: int | None = None,
    vae_tiling: str = "auto",
) -> list[DepthEstimate]:
    """:func:`estimate_depth` of several photos, ``batch_size`` photos (with their ensembles) per pipeline call.

    Photos whose processing canvas has the same size share calls, in input order; results come back in
    input order. ``generators`` holds one generator per photo (or None). A photo's initial noise is
    drawn from its own generator exactly as a call for that photo alone draws it, so with mask
    conditioning (an 18-channel model) a batched estimate equals the photo's own up to floating-point
    round-off; latent replacement (an 8-channel model) draws its further noise per sample in a batch.
    ``decode_chunk_size`` bounds how many depth latents the VAE decodes at once (default: ``batch_size``).
    """
    if ensemble_size < 1:
        raise ValueError(f"`ensemble_size` must be >= 1, got {ensemble_size}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    n = len(images)
    references = list(references) if references is not None else [None] * n
    generators = list(generators) if generators is not None else [None] * n
    if len(references) != n or len(generators) != n:
        raise ValueError(f"`references` and `generators` need one entry per image ({n})")
    one_step = bool(getattr(pipe, "is_one_step_depth", False))
    if one_step:
        if ensemble_size > 1 or num_inference_steps != 1:
            logger.info("one-step depth model: one deterministic step, no ensemble (asked for %d step(s), "
                        "ensemble %d)", num_inference_steps, ensemble_size)
        num_inference_steps, ensemble_size, spacing = 1, 1, "trailing"
    res = native_resolution(pipe) if processing_resolution is None else processing_resolution
    plans = [plan_processing((im.height, im.width), res, resize_mode, pipe.vae_scale_factor) for im in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(plan.model_hw, []).append(i)
    results: list[DepthEstimate | None] = [None] * n
    for model_hw, indices in groups.items():
        for start in range(0, len(indices), batch_size):
            batch = indices[start:start + batch_size]
            members = _sample_members(pipe, [plans[i].to_model(images[i]) for i in batch],
                                      [references[i] for i in batch], [generators[i] for i in batch], model_hw,
                                      num_inference_steps, ensemble_size, spacing, inpaint_mode, one_step,
                                      decode_chunk_size or batch_size, vae_tiling)
            for k, i in enumerate(batch):
                results[i] = _merge(plans[i], members[k * ensemble_size:(k + 1) * ensemble_size])
    return results


def _sample_members(pipe, model_images, references, generators, model_hw, steps, ensemble, spacing, inpaint_mode,
                    one_step, decode_chunk_size, tiling) -> np.ndarray:
    """One pipeline call for photos on one canvas size: ``(len(photos) * ensemble, h, w)`` depth samples."""
    rgb_mask, depth_mask = TASKS["depth_estimation"].masks()
    refs = [r if r is not None else m for r, m in zip(references, model_images)]
    generator, latents = generators[0], None
    if one_step or len(model_images) > 1:
        shape = (ensemble, 2 * pipe.joint_denoiser.latent_channels,
                 model_hw[0] // pipe.vae_scale_factor, model_hw[1] // pipe.vae_scale_factor)
    if one_step:
        latents = torch.zeros((len(model_images) * ensemble, *shape[1:]))  # the noise's mean
    elif len(model_images) > 1:
        # each photo's noise from its own generator, as its own call would draw it; the rest per sample
        device, dtype = pipe._execution_device, pipe.unet.dtype
        latents = torch.cat([randn_tensor(shape, generator=g, device=device, dtype=dtype) for g in generators])
        if any(g is not None for g in generators):  # a photo without a generator gets an unseeded one
            generator = [g if g is not None else _unseeded() for g in generators for _ in range(ensemble)]
    with vae_tiling(pipe.vae, tiling, model_hw, VAE_TILE):
        out = pipe(
            refs if len(refs) > 1 else refs[0],
            num_images_per_reference=ensemble,
            num_inference_steps=steps,
            height=model_hw[0],
            width=model_hw[1],
            image=model_images if len(model_images) > 1 else model_images[0],
            rgb_mask=rgb_mask,
            depth_mask=depth_mask,
            inpaint_mode=inpaint_mode,
            generator=generator,
            latents=latents,
            timestep_spacing=spacing,
            output_domains=("depth",),
            output_type="np",
            decode_chunk_size=decode_chunk_size,
        )
    return out.depths  # (R * N, h, w)


def _unseeded() -> torch.Generator:
    generator = torch.Generator()
    generator.seed()  # this generator's own non-deterministic seed; the global RNG is untouched
    return generator


def _merge(plan: ProcessingPlan, members: np.ndarray) -> DepthEstimate:
    """The ensemble of one photo's samples ``(N, h, w)``, at the photo's size."""
    h, w = plan.scaled_hw
    content = members[:, :h, :w]  # the image content, not the padding
    merged = ensemble_depths(content, mask=foreground_mask(content))  # aligned over the face, not the far plane
    depth = np.clip(plan.array_to_input(merged.depth), 0.0, 1.0)
    uncertainty = plan.array_to_input(merged.uncertainty) if members.shape[0] > 1 else None
    return DepthEstimate(depth.astype(np.float32), uncertainty, members)
