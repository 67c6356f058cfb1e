"""Monocular depth estimation: image -> relative depth (paper Sec. 4 and 5.3).

Channel-wise inpainting with masks (rgb 0, depth 1): the image is known, the
depth is generated. The reference defaults to the input image itself (the
identity is the photo's own). Options follow Marigold (Ke et al. 2024): few
steps with trailing timestep spacing, an ensemble of N samples merged by
aligned per-pixel median with an uncertainty map
(:mod:`jointportrait.applications.ensemble`), and a processing resolution with
resize or pad to a multiple of 8 and back to the input size
(:mod:`jointportrait.applications.resolution`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from jointportrait.applications.ensemble import ensemble_depths, foreground_mask
from jointportrait.applications.resolution import plan_processing
from jointportrait.applications.sampling import native_resolution
from jointportrait.conditioning import TASKS


@dataclass
class DepthEstimate:
    depth: np.ndarray  # (H, W) float32 in [0, 1], 0 = near, at the input size
    uncertainty: np.ndarray | None  # (H, W) float32, ensemble spread (None for a single sample)
    members: np.ndarray  # (N, h, w) float32, the samples at the processing size


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
    """
    if ensemble_size < 1:
        raise ValueError(f"`ensemble_size` must be >= 1, got {ensemble_size}")
    res = native_resolution(pipe) if processing_resolution is None else processing_resolution
    plan = plan_processing((image.height, image.width), res, resize_mode, pipe.vae_scale_factor)
    model_image = plan.to_model(image)
    rgb_mask, depth_mask = TASKS["depth_estimation"].masks()
    out = pipe(
        reference if reference is not None else model_image,
        num_images_per_reference=ensemble_size,
        num_inference_steps=num_inference_steps,
        height=plan.model_hw[0],
        width=plan.model_hw[1],
        image=model_image,
        rgb_mask=rgb_mask,
        depth_mask=depth_mask,
        inpaint_mode=inpaint_mode,
        generator=generator,
        timestep_spacing=spacing,
        output_domains=("depth",),
        output_type="np",
    )
    members = out.depths  # (N, h, w)
    h, w = plan.scaled_hw
    content = members[:, :h, :w]  # the image content, not the padding
    merged = ensemble_depths(content, mask=foreground_mask(content))  # aligned over the face, not the far plane
    depth = np.clip(plan.array_to_input(merged.depth), 0.0, 1.0)
    uncertainty = plan.array_to_input(merged.uncertainty) if ensemble_size > 1 else None
    return DepthEstimate(depth.astype(np.float32), uncertainty, members)

