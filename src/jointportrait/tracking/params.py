"""Parameters of a tracked clip and the forward model they drive (paper Sec. 5.1, supplementary 7.3).

A clip is explained by one face-model identity code (50 coefficients, shared by
all frames; one per frame only for the ablation), per-frame PCA expression
(25), per-frame rigid head pose (axis-angle rotation and translation, camera
space), one focal length (principal point at the image centre), per-vertex
linear albedo and 9-coefficient SH lighting per colour channel.

Camera-space vertices (OpenCV axes, centimetres):
``v_cam = R(rotation) @ MODEL_TO_OPENCV @ v_model + translation``, so a zero
rotation shows the face looking at the camera. Pixel centres lie on integer
coordinates; the camera is built and applied by :mod:`jointportrait.geometry.cameras`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from jointportrait.face_models import NUM_EXPRESSION, NUM_IDENTITY, FaceModel
from jointportrait.geometry.cameras import (
    MODEL_TO_OPENCV,
    intrinsics_matrix,
    principal_point,
    project_pinhole,
)


def axis_angle_to_matrix(rotation: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle vectors ``(B, 3)`` -> rotation matrices ``(B, 3, 3)``; smooth at zero."""
    theta2 = (rotation * rotation).sum(-1, keepdim=True)  # (B, 1)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    # sin(t)/t and (1 - cos(t))/t^2 with their Taylor series near zero
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)[..., None]  # (B, 1, 1)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta2 + 1e-30))[..., None]
    x, y, z = rotation.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)  # (B, 3, 3)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(skew)
    return eye + a * skew + b * (skew @ skew)


@dataclass
class TrackParams:
    """All fitted tensors of one clip of ``F`` frames (``I`` = 1 with a shared identity, else ``F``).

    identity (I, 50); expression (F, 25); rotation (F, 3) axis-angle; translation
    (F, 3) cm, camera space; log_focal (1,) log of the focal length in pixels of
    the full-resolution frame; albedo (V, 3) linear RGB; sh (9, 3).
    """

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    log_focal: torch.Tensor
    albedo: torch.Tensor
    sh: torch.Tensor

    @classmethod
    def initial(cls, model: FaceModel, num_frames: int, focal: float, shared_identity: bool = True) -> TrackParams:
        """The starting point of a fit, on the model's device."""
        device = model.neutral.device
        sh = torch.zeros(9, 3, device=device)
        sh[0] = 1.0 / (math.pi * 0.282095)  # uniform light: irradiance 1 everywhere
        return cls(
            identity=torch.zeros(1 if shared_identity else num_frames, NUM_IDENTITY, device=device),
            expression=torch.zeros(num_frames, NUM_EXPRESSION, device=device),
            rotation=torch.zeros(num_frames, 3, device=device),
            translation=torch.zeros(num_frames, 3, device=device),
            log_focal=torch.tensor([math.log(focal)], device=device),
            albedo=torch.full((model.num_vertices, 3), 0.5, device=device),
            sh=sh,
        )

    @property
    def num_frames(self) -> int:
        return self.expression.shape[0]

    @property
    def focal(self) -> torch.Tensor:
        return self.log_focal.exp()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def detach(self) -> TrackParams:
        return TrackParams(**{k: v.detach().clone() for k, v in self.tensors().items()})

    def to(self, device: str | torch.device) -> TrackParams:
        return TrackParams(**{k: v.to(device) for k, v in self.tensors().items()})

    def frame_identity(self) -> torch.Tensor:
        """The identity code of every frame ``(F, 50)``."""
        return self.identity.expand(self.num_frames, -1)

    def intrinsics(self, height: int, width: int, scale: float = 1.0) -> torch.Tensor:
        """``K`` ``(3, 3)`` of the frame resampled by ``scale`` (pixel centres stay on integers)."""
        f = self.focal[0] * scale
        return intrinsics_matrix(f, f, principal_point(width, scale), principal_point(height, scale))

    def save(self, path: Path, **extra: np.ndarray) -> None:
        np.savez(path, **{k: v.detach().cpu().numpy() for k, v in self.tensors().items()}, **extra)

    @classmethod
    def load(cls, path: Path) -> TrackParams:
        with np.load(path) as data:
            return cls(**{f.name: torch.from_numpy(data[f.name]) for f in fields(cls)})


def model_to_camera(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Model-frame points ``(F, N, 3)`` -> camera space ``(F, N, 3)`` under per-frame pose ``(F, 3)``, ``(F, 3)``."""
    rot = axis_angle_to_matrix(rotation) @ MODEL_TO_OPENCV.to(rotation)  # (F, 3, 3)
    return points @ rot.transpose(1, 2) + translation[:, None, :]


def camera_vertices(model: FaceModel, params: TrackParams) -> torch.Tensor:
    """All mesh vertices ``(F, V, 3)`` in camera space."""
    verts = model.vertices(identity=params.frame_identity(), expression=params.expression)  # (F, V, 3)
    return model_to_camera(verts, params.rotation, params.translation)


def landmark_points(model: FaceModel, params: TrackParams) -> torch.Tensor:
    """The 68 landmarks ``(F, 68, 3)`` in camera space, computed from the landmark rows of the bases only
    (in the parameters' dtype)."""
    idx, dtype = model.landmark_indices, params.identity.dtype  # float64 in the landmark stages
    pts = model.neutral[idx].to(dtype)[None] + torch.einsum("fk,kvc->fvc", params.frame_identity(),
                                                            model.identity_basis[:, idx].to(dtype))
    pts = pts + torch.einsum("fk,kvc->fvc", params.expression, model.expression_basis[:, idx].to(dtype))  # (F, 68, 3)
    return model_to_camera(pts, params.rotation, params.translation)


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-space points ``(F, N, 3)`` -> pixels ``(F, N, 2)`` through one ``K`` ``(3, 3)``; z is clamped at
    1e-3 cm, so an optimiser step that pushes a point behind the camera gives a finite gradient."""
    return project_pinhole(points, K, min_depth=1e-3)
