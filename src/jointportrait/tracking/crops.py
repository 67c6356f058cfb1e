"""Face crops of a tracked clip (paper Sec. 5.1: the model trains on 512 x 512 face crops).

Each frame is cropped with the rule of :mod:`jointportrait.faces.crop` applied
to the fitted model's 68 landmarks (smooth in time, and the same kind of
points the synthetic data projects), and the fitted mesh is rendered straight
into the crop through the crop's intrinsics, so the depth, coverage and skin
masks of a crop are exact rather than resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jointportrait.face_models import FaceModel
from jointportrait.faces.crop import FaceCrop
from jointportrait.geometry.cameras import PerspectiveCamera
from jointportrait.render import rasterize
from jointportrait.tracking.params import TrackParams, camera_vertices


@dataclass
class CropViews:
    """Per-frame crops: images ``(F, S, S, 3)`` uint8, depth ``(F, S, S)`` float32 camera z (0 outside the
    mask), mask and skin ``(F, S, S)`` bool, intrinsics ``(F, 3, 3)`` and the crops themselves."""

    images: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    skin: np.ndarray
    intrinsics: np.ndarray
    crops: list[FaceCrop]


@torch.no_grad()
def render_crops(model: FaceModel, params: TrackParams, frames: np.ndarray, landmarks: np.ndarray, size: int,
                 margin: float = 1.0) -> CropViews:
    """Crop frames ``(F, H, W, 3)`` around landmarks ``(F, 68, 2)`` and render the fit into the crops."""
    num, height, width, _ = frames.shape
    crops = [FaceCrop.from_landmarks(landmarks[f], height, width, size=size, margin=margin) for f in range(num)]
    K = params.intrinsics(height, width).double().numpy()
    Ks = np.stack([c.intrinsics(K) for c in crops])  # (F, 3, 3)
    verts = camera_vertices(model, params)  # (F, V, 3)
    frags = rasterize(verts, model.triangles, PerspectiveCamera(torch.from_numpy(Ks).float()), size, size)
    inside = torch.from_numpy(np.stack([c.inside for c in crops]))  # (F, S, S): replicated borders are no data
    mask = frags.mask & inside
    skin = mask & model.skin_triangle_mask[frags.triangle_id.clamp_min(0)]
    depth = torch.where(mask, frags.depth, torch.zeros_like(frags.depth))
    images = np.stack([c.crop(frame) for c, frame in zip(crops, frames)])
    return CropViews(images, depth.float().numpy(), mask.numpy(), skin.numpy(), Ks, crops)
