"""Depth-to-image: a depth map and an identity reference -> portraits (paper Sec. 4, 5.4).

Channel-wise inpainting with masks (rgb 1, depth 0): the depth is known (raw,
larger = farther; normalised inside the pipeline), the RGB is generated to
match it with the reference's identity. The depth can come from this model's
depth estimation, from another photo, or from a rendered face model.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from jointportrait.applications.resolution import plan_processing
from jointportrait.applications.sampling import native_resolution
from jointportrait.conditioning import TASKS


@torch.no_grad()
def depth_to_image(
    pipe,
    depth: np.ndarray,
    reference: PIL.Image.Image,
    depth_valid: np.ndarray | None = None,
    num_samples: int = 1,
    num_inference_steps: int = 20,
    guidance_scale: float = 1.0,
    processing_resolution: int | None = None,
    resize_mode: str = "resize",
    inpaint_mode: str = "auto",
    generator: torch.Generator | None = None,
    timestep_spacing: str | None = None,
) -> list[PIL.Image.Image]:
    """Portraits ``num_samples`` x PIL at the depth's size, generated for ``depth`` ``(H, W)``.

    ``depth_valid`` (``(H, W)`` bool) marks pixels with depth; others are the far plane.
    ``timestep_spacing``: the scheduler's spacing for this call (None: the model's own).
    """
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) if depth_valid is None else (np.asarray(depth_valid, bool) & np.isfinite(depth))
    res = native_resolution(pipe) if processing_resolution is None else processing_resolution
    plan = plan_processing(depth.shape, res, resize_mode, pipe.vae_scale_factor)
    # nearest: no blending of the face's depth with the background at the silhouette
    model_depth = plan.array_to_model(np.where(valid, depth, 0.0), nearest=True)
    model_valid = plan.array_to_model(valid.astype(np.float32), nearest=True) > 0.5
    rgb_mask, depth_mask = TASKS["depth_to_image"].masks()
    out = pipe(
        reference,
        num_images_per_reference=num_samples,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=plan.model_hw[0],
        width=plan.model_hw[1],
        depth=model_depth,
        depth_valid=model_valid,
        rgb_mask=rgb_mask,
        depth_mask=depth_mask,
        inpaint_mode=inpaint_mode,
        generator=generator,
        timestep_spacing=timestep_spacing,
        output_domains=("rgb",),
    )
    return [plan.image_to_input(img) for img in out.images]
