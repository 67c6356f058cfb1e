"""Depth-based portrait editing (paper Sec. 5.4, Fig. 7).

Given a photo, an edited version of its depth and a spatial mask, the model
regenerates the RGB inside the mask to agree with the edited depth, keeping the
rest of the photo and (through the ReferenceNet, whose reference defaults to the
photo) the identity. Masks: RGB = the spatial mask (1 = regenerate), depth = 0
(the edited depth is given everywhere).

Two details make "changes only inside the mask" exact: the mask is grown to whole
latent cells before sampling (a thin mask must not vanish on the 8x coarser
latent grid), and the result is composited with the original photo at its full
resolution through the user's mask, so every pixel outside it is the input pixel.
Without a mask, it is derived from where the edited depth differs from the
original depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from jointportrait.applications.resolution import plan_processing
from jointportrait.applications.sampling import native_resolution
from jointportrait.conditioning import TASKS


@dataclass
class EditResult:
    image: PIL.Image.Image  # at the input size; equal to the input outside ``mask``
    mask: np.ndarray  # (H, W) bool, the region that was regenerated


def mask_from_depth_edit(depth: np.ndarray, edited_depth: np.ndarray, tolerance: float = 0.01,
                         grow: int = 4) -> np.ndarray:
    """Pixels whose depth changed by more than ``tolerance`` of the depth's range, grown by ``grow`` pixels."""
    import cv2

    d, e = np.asarray(depth, np.float64), np.asarray(edited_depth, np.float64)
    finite = np.isfinite(d) & np.isfinite(e)
    span = float(np.ptp(d[finite])) if finite.any() else 0.0
    changed = finite & (np.abs(e - d) > tolerance * max(span, 1e-12))
    if grow > 0:
        kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
        changed = cv2.dilate(changed.astype(np.uint8), kernel) > 0
    return changed


def push_pull_depth(depth: np.ndarray, region: np.ndarray, offset: float, feather: float = 0.0) -> np.ndarray:
    """A depth edit: ``depth + offset * w`` with ``w`` the ``region`` (``(H, W)`` bool) smoothed by a Gaussian
    of standard deviation ``feather`` pixels (0 = a hard step).

    ``offset > 0`` pushes the region away from the camera, ``offset < 0`` pulls it closer (depth is
    larger = farther); the feather turns the step at the region's border into a slope, so the
    regenerated surface has no cliff.
    """
    import cv2

    d = np.asarray(depth, np.float64)
    w = np.asarray(region, bool).astype(np.float64)
    if d.shape != w.shape:
        raise ValueError(f"depth {d.shape} and region {w.shape} must have the same size")
    if feather > 0:
        w = cv2.GaussianBlur(w, (0, 0), sigmaX=float(feather), borderType=cv2.BORDER_REPLICATE)
    return (d + float(offset) * w).astype(np.float32)


def grow_to_cells(mask: np.ndarray, cell: int) -> np.ndarray:
    """Every ``cell`` x ``cell`` block that touches ``mask`` becomes fully 1 (sides must be multiples of ``cell``)."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    blocks = m.reshape(h // cell, cell, w // cell, cell).any(axis=(1, 3))  # (h/cell, w/cell)
    return np.repeat(np.repeat(blocks, cell, axis=0), cell, axis=1)


@torch.no_grad()
def edit_with_depth(
    pipe,
    image: PIL.Image.Image,
    edited_depth: np.ndarray,
    mask: np.ndarray,
    reference: PIL.Image.Image | None = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 1.0,
    processing_resolution: int | None = None,
    inpaint_mode: str = "auto",
    generator: torch.Generator | None = None,
    timestep_spacing: str | None = None,
) -> EditResult:
    """Regenerate ``image`` inside ``mask`` (``(H, W)`` bool, True = change) to follow ``edited_depth`` ``(H, W)``.

    ``edited_depth`` is raw depth (larger = farther) over the whole image, e.g. the
    estimated depth with a region pushed in or out.
    """
    mask = np.asarray(mask, bool)
    size = (image.height, image.width)
    if mask.shape != size or np.shape(edited_depth) != size:
        raise ValueError(f"mask {mask.shape} and edited depth {np.shape(edited_depth)} must match the image {size}")
    res = native_resolution(pipe) if processing_resolution is None else processing_resolution
    plan = plan_processing(size, res, "pad", pipe.vae_scale_factor)  # pad: the photo is not distorted
    model_image = plan.to_model(image)
    depth = np.asarray(edited_depth, np.float32)
    valid = np.isfinite(depth)
    model_depth = plan.array_to_model(np.where(valid, depth, 0.0), nearest=True)
    model_valid = plan.array_to_model(valid.astype(np.float32), nearest=True) > 0.5
    model_mask = grow_to_cells(plan.array_to_model(mask.astype(np.float32), nearest=True) > 0.5, pipe.vae_scale_factor)
    rgb_mask, depth_mask = TASKS["rgb_editing"].masks(spatial=model_mask.astype(np.float32))
    out = pipe(
        reference if reference is not None else model_image,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=plan.model_hw[0],
        width=plan.model_hw[1],
        image=model_image,
        depth=model_depth,
        depth_valid=model_valid,
        rgb_mask=rgb_mask,
        depth_mask=depth_mask,
        inpaint_mode=inpaint_mode,
        generator=generator,
        timestep_spacing=timestep_spacing,
        output_domains=("rgb",),
    )
    generated = np.asarray(plan.image_to_input(out.images[0]))
    composite = np.where(mask[..., None], generated, np.asarray(image.convert("RGB")))
    return EditResult(PIL.Image.fromarray(composite), mask)
