"""Track a clip and render its pseudo ground-truth depth (paper Sec. 5.1, supplementary 7.3).

:func:`track_clip` runs the stages of :mod:`jointportrait.tracking.stages` on
frames + 68-point landmarks and renders, for every frame, the camera-space
depth of the fitted mesh, its coverage mask and the skin mask (face skin
without eyes and mouth interior). A fit is declared diverged (and must not be
written as data) when its parameters are not finite, a head lies behind the
camera, or the median landmark error exceeds ``diverged_error`` inter-ocular
distances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from jointportrait.appearance.color import srgb_to_linear
from jointportrait.face_models import FaceModel
from jointportrait.geometry.cameras import PerspectiveCamera
from jointportrait.render import rasterize
from jointportrait.tracking.landmarks import interocular_distance
from jointportrait.tracking.params import TrackParams, camera_vertices, landmark_points, project
from jointportrait.tracking.stages import (
    Progress,
    TrackerConfig,
    fit_landmarks,
    fit_photometric,
    prior_focal,
    rigid_init,
)

logger = logging.getLogger(__name__)


@dataclass
class TrackResult:
    """A fitted clip. depth ``(F, H, W)`` float32 camera z in cm (0 outside ``mask``); mask, skin ``(F, H, W)``
    bool; normals ``(F, H, W, 3)``; landmark_error ``(F,)`` mean reprojection error in pixels;
    ``diverged`` is None or the reason the fit is not usable."""

    params: TrackParams
    depth: np.ndarray
    mask: np.ndarray
    skin: np.ndarray
    normals: np.ndarray
    landmarks: np.ndarray
    fitted_landmarks: np.ndarray
    landmark_error: np.ndarray
    diverged: str | None
    photometric_error: list[float] = field(default_factory=list)

    def intrinsics(self) -> np.ndarray:
        height, width = self.depth.shape[1:]
        return self.params.intrinsics(height, width).double().numpy()


@torch.no_grad()
def render_fit(model: FaceModel, params: TrackParams, height: int, width: int) -> tuple[np.ndarray, ...]:
    """Depth ``(F, H, W)``, coverage and skin masks and normals of the whole fitted mesh at frame resolution."""
    verts = camera_vertices(model, params)  # (F, V, 3)
    camera = PerspectiveCamera(params.intrinsics(height, width)[None].expand(params.num_frames, 3, 3))
    frags = rasterize(verts, model.triangles, camera, height, width)
    skin = frags.mask & model.skin_triangle_mask[frags.triangle_id.clamp_min(0)]
    depth = torch.where(frags.mask, frags.depth, torch.zeros_like(frags.depth))
    return tuple(t.cpu().numpy() for t in (depth.float(), frags.mask, skin, frags.normals.float()))


@torch.no_grad()
def fitted_landmarks(model: FaceModel, params: TrackParams, height: int, width: int) -> np.ndarray:
    """The fitted model's 68 landmarks in pixels ``(F, 68, 2)``."""
    return project(landmark_points(model, params), params.intrinsics(height, width)).cpu().numpy()


def divergence(params: TrackParams, error: np.ndarray, landmarks: np.ndarray, config: TrackerConfig) -> str | None:
    """Why a fit is unusable, or None."""
    if not all(torch.isfinite(t).all() for t in params.tensors().values()) or not np.isfinite(error).all():
        return "parameters are not finite"
    if (params.translation[:, 2] <= 0).any():
        return "the head lies behind the camera"
    relative = float(np.median(error / np.maximum(interocular_distance(landmarks), 1e-6)))
    if relative > config.diverged_error:
        return (f"median landmark error is {relative:.2f} inter-ocular distances "
                f"(limit {config.diverged_error:.2f})")
    return None


def track_clip(model: FaceModel, frames: np.ndarray, landmarks: np.ndarray, config: TrackerConfig | None = None,
               progress: Progress | None = None) -> TrackResult:
    """Fit the face model to frames ``(F, H, W, 3)`` uint8 sRGB with landmarks ``(F, 68, 2)`` pixels.

    All frames of the clip are one batched fit, on the model's device (``model.to("cuda")``); the result
    is on the CPU.
    """
    config = config or TrackerConfig()
    num, height, width, _ = frames.shape
    if landmarks.shape != (num, 68, 2):
        raise ValueError(f"landmarks must be ({num}, 68, 2), got {tuple(landmarks.shape)}")
    device = model.neutral.device
    lmk = torch.from_numpy(np.ascontiguousarray(landmarks, dtype=np.float32)).to(device)

    focal = prior_focal(height, width, config)
    rotation, translation = rigid_init(model, landmarks, height, width, focal)
    params = TrackParams.initial(model, num, focal, shared_identity=config.shared_identity)
    params.rotation.copy_(torch.from_numpy(rotation))
    params.translation.copy_(torch.from_numpy(translation))
    fit_landmarks(model, params, lmk, height, width, config, shape=False, steps=config.rigid_steps,
                  progress=progress)
    fit_landmarks(model, params, lmk, height, width, config, shape=True, steps=config.shape_steps,
                  progress=progress)
    photo_errors = []
    if config.photometric:
        linear = srgb_to_linear(torch.from_numpy(frames).to(device).float() / 255.0)  # (F, H, W, 3)
        photo_errors = fit_photometric(model, params, linear, lmk, config, progress=progress)
    params = params.detach()  # on the device until rendered, then on the CPU
    fitted = fitted_landmarks(model, params, height, width)
    error = np.linalg.norm(fitted - landmarks, axis=-1).mean(-1)  # (F,)
    reason = divergence(params, error, landmarks, config)
    if reason is not None:
        logger.warning("fit diverged: %s", reason)
        empty = np.zeros((num, height, width), np.float32)
        return TrackResult(params.to("cpu"), empty, empty > 0, empty > 0,
                           np.zeros((num, height, width, 3), np.float32),
                           landmarks, fitted, error, reason, photo_errors)
    depth, mask, skin, normals = render_fit(model, params, height, width)
    return TrackResult(params.to("cpu"), depth, mask, skin, normals, landmarks, fitted, error, None, photo_errors)
