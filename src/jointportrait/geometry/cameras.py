"""Cameras: one construction for the renderer, the synthetic data, the tracker and the applications.

Paper Sec. 5.1 (depth rendered from registered meshes, tracked video) and Suppl. 8.2
(normals and relighting from a depth map) all use the same pinhole model, built here.

Convention (OpenCV): camera space has x right, y down, z forward (into the scene),
so visible points have z > 0 and depth is camera-space z (larger = farther).
Pixel (row i, column j) samples the image point (u, v) = (j, i): pixel centres lie
on integer coordinates, exactly as ``cv2.projectPoints`` places them, so the
principal point of a centred camera is ``((W - 1) / 2, (H - 1) / 2)``. A perspective
camera maps a camera-space point to ``(u, v) = K[:2] @ (x/z, y/z, 1)`` with
``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]``; an orthographic one to
``u = sx * x + cx, v = sy * y + cy``. ``world_to_camera`` is a 4x4 rigid
transform ``x_cam = R (x_world - c)``; batches carry one camera per item.

Face models use +y up, +z towards the viewer (ICT-FaceKit); :data:`MODEL_TO_OPENCV`
turns such a frame into the OpenCV one (x kept, y and z flipped).

Torch functions serve the differentiable renderer and the tracker (gradients flow
through tensor arguments, e.g. a fitted focal length); numpy functions serve
per-pixel depth maps (:func:`backproject`). The model's relative depth in [0, 1] has
no metric scale, so :func:`relative_to_camera_depth` places it at an assumed subject
distance with an assumed depth span, both in the same (arbitrary) unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

# diag(1, -1, -1): a y-up, z-towards-viewer frame -> x right, y down, z forward.
MODEL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
# The same flip as per-axis signs for numpy points and normals: OpenCV camera frame <-> the viewer frame of
# 3-D files and lighting (x right, y up, z toward the viewer); it is its own inverse.
OPENCV_TO_VIEWER = np.array([1.0, -1.0, -1.0])

DEFAULT_FOV_DEG = 40.0
DEFAULT_DISTANCE = 1.0
DEFAULT_DEPTH_RANGE = 0.3


# --- construction -------------------------------------------------------------------------------------------

def focal_from_fov(size: float, fov_degrees: float) -> float:
    """Focal length in pixels of a camera whose field of view ``fov_degrees`` spans ``size`` pixels."""
    if not 0.0 < fov_degrees < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_degrees}")
    return 0.5 * size / math.tan(math.radians(fov_degrees) / 2.0)


def principal_point(size: int, scale: float = 1.0) -> float:
    """Centre coordinate of an image side of ``size`` pixels, resampled by ``scale``.

    With pixel centres on integers the centre is ``(size - 1) / 2``; resampling by ``scale``
    (area-aligned, as ``cv2.resize``) maps a coordinate ``x`` to ``x * scale + (scale - 1) / 2``.
    """
    return (size - 1) / 2.0 * scale + (scale - 1) / 2.0


def intrinsics_matrix(fx, fy, cx, cy, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` as a (3, 3) tensor.

    Python numbers give a tensor of ``dtype``; when any entry is a tensor, all take its
    dtype and device and ``K`` is differentiable in the tensor entries.
    """
    entries = (fx, fy, cx, cy)
    like = next((v for v in entries if torch.is_tensor(v)), None)
    if like is None:
        return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    fx, fy, cx, cy = (torch.as_tensor(v, dtype=like.dtype, device=like.device) for v in entries)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([torch.stack([fx, zero, cx]), torch.stack([zero, fy, cy]), torch.stack([zero, zero, one])])


def intrinsics_from_fov(height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics ``(3, 3)`` float64 whose horizontal field of view is ``fov_deg``, principal point centred."""
    f = focal_from_fov(width, fov_deg)
    return intrinsics_matrix(f, f, principal_point(width), principal_point(height), dtype=torch.float64).numpy()


def orthographic_pixel_size(width: int, fov_deg: float = DEFAULT_FOV_DEG, distance: float = DEFAULT_DISTANCE) -> float:
    """Pixel size of an orthographic camera that covers what a ``fov_deg`` camera sees at ``distance``."""
    return 2.0 * distance * math.tan(math.radians(fov_deg) / 2.0) / width


def world_to_camera_matrix(rotation: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Extrinsics ``(4, 4)`` float64 of a camera at ``centre`` (3,) whose ``rotation`` (3, 3) takes world axes to
    camera axes: ``x_cam = R (x_world - centre)``."""
    rot = np.asarray(rotation, np.float64)
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ np.asarray(centre, np.float64)
    return w2c


# --- projection and back-projection -------------------------------------------------------------------------

def transform_points(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply 4x4 transforms ``(B, 4, 4)`` to points ``(B, N, 3)``."""
    rot = matrix[:, :3, :3].to(points.dtype)  # (B, 3, 3)
    trans = matrix[:, :3, 3].to(points.dtype)  # (B, 3)
    return points @ rot.transpose(1, 2) + trans[:, None, :]  # (B, N, 3)


def project_pinhole(points: torch.Tensor, K: torch.Tensor, min_depth: float | None = None) -> torch.Tensor:
    """Camera-space points ``(B, N, 3)`` -> pixel coordinates ``(B, N, 2)`` (u right, v down).

    ``K`` is one ``(3, 3)`` matrix for the whole batch or ``(B, 3, 3)``; ``min_depth`` clamps z
    from below (an optimiser may push points behind the camera); differentiable in both.
    """
    K = K.to(points)
    K = K[None] if K.ndim == 2 else K  # (B or 1, 3, 3)
    z = points[..., 2:3] if min_depth is None else points[..., 2:3].clamp_min(min_depth)
    xy = points[..., :2] / z  # (B, N, 2)
    u = K[:, None, 0, 0] * xy[..., 0] + K[:, None, 0, 1] * xy[..., 1] + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * xy[..., 1] + K[:, None, 1, 2]
    return torch.stack([u, v], dim=-1)  # (B, N, 2)


def relative_to_camera_depth(relative: np.ndarray, distance: float = DEFAULT_DISTANCE,
                             depth_range: float = DEFAULT_DEPTH_RANGE) -> np.ndarray:
    """Relative depth in [0, 1] (0 = near) -> camera z: ``distance + depth_range * relative``."""
    return distance + depth_range * np.asarray(relative, np.float64)


def backproject(depth: np.ndarray, intrinsics: np.ndarray | None = None,
                pixel_size: float | None = None) -> np.ndarray:
    """Depth ``(H, W)`` (camera z) -> points ``(H, W, 3)`` in the OpenCV camera frame.

    Give ``intrinsics`` for a perspective camera, ``X = z (u - cx) / fx``, or ``pixel_size``
    for an orthographic one, ``X = (u - (W - 1) / 2) * pixel_size`` (centred on the optical axis).
    """
    if (intrinsics is None) == (pixel_size is None):
        raise ValueError("give exactly one of `intrinsics` (perspective) or `pixel_size` (orthographic)")
    z = np.asarray(depth, np.float64)
    h, w = z.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    if intrinsics is not None:
        k = np.asarray(intrinsics, np.float64)
        x = (u - k[0, 2]) / k[0, 0] * z
        y = (v - k[1, 2]) / k[1, 1] * z
    else:
        x = (u - principal_point(w)) * pixel_size
        y = (v - principal_point(h)) * pixel_size
    return np.stack([x, y, z], axis=-1)  # (H, W, 3)


# --- batched cameras of the renderer ------------------------------------------------------------------------

def _batched(matrix: torch.Tensor, size: int, name: str) -> torch.Tensor:
    matrix = torch.as_tensor(matrix, dtype=torch.float32) if not torch.is_tensor(matrix) else matrix
    if matrix.shape[-2:] != (size, size):
        raise ValueError(f"{name} must have shape (B, {size}, {size}) or ({size}, {size}), got {tuple(matrix.shape)}")
    return matrix[None] if matrix.ndim == 2 else matrix


@dataclass
class PerspectiveCamera:
    """A pinhole camera: intrinsics ``K`` (B, 3, 3) and ``world_to_camera`` (B, 4, 4), OpenCV axes.

    A batch of one camera serves a batch of any size."""

    perspective: ClassVar[bool] = True
    K: torch.Tensor
    world_to_camera: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.K = _batched(self.K, 3, "K")
        if self.world_to_camera is None:
            self.world_to_camera = torch.eye(4, dtype=self.K.dtype).expand(self.K.shape[0], 4, 4)
        self.world_to_camera = _batched(self.world_to_camera, 4, "world_to_camera")

    @property
    def batch_size(self) -> int:
        return max(self.K.shape[0], self.world_to_camera.shape[0])

    def world_to_view(self, points_world: torch.Tensor) -> torch.Tensor:
        """World points ``(B, N, 3)`` -> camera-space points ``(B, N, 3)``."""
        return transform_points(self.world_to_camera.to(points_world.device), points_world)

    def project(self, points_cam: torch.Tensor) -> torch.Tensor:
        """Camera-space points ``(B, N, 3)`` -> pixel coordinates ``(B, N, 2)`` (u right, v down)."""
        return project_pinhole(points_cam, self.K)

    def pixel_rays(self, pixels: torch.Tensor, batch_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through pixel coordinates ``(P, 2)`` of items ``(P,)``: origins and directions with z = 1."""
        K = self.K.to(pixels)
        batch_index = batch_index if K.shape[0] > 1 else torch.zeros_like(batch_index)
        fx, fy, cx, cy, skew = torch.stack(  # (P, 5) gathered per pixel
            [K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 0, 1]], -1).index_select(0, batch_index).unbind(-1)
        y = (pixels[:, 1] - cy) / fy
        x = (pixels[:, 0] - cx - skew * y) / fx
        direction = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # (P, 3)
        return torch.zeros_like(direction), direction


@dataclass
class OrthographicCamera:
    """An orthographic camera: ``u = sx x + cx``, ``v = sy y + cy`` in pixels per world unit, OpenCV axes.

    ``scale`` (B, 2) holds (sx, sy), ``principal_point`` (B, 2) holds (cx, cy).
    """

    perspective: ClassVar[bool] = False
    scale: torch.Tensor
    principal_point: torch.Tensor
    world_to_camera: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.scale = torch.as_tensor(self.scale, dtype=torch.float32).reshape(-1, 2)
        self.principal_point = torch.as_tensor(self.principal_point, dtype=torch.float32).reshape(-1, 2)
        if self.world_to_camera is None:
            self.world_to_camera = torch.eye(4).expand(self.scale.shape[0], 4, 4)
        self.world_to_camera = _batched(self.world_to_camera, 4, "world_to_camera")

    @property
    def batch_size(self) -> int:
        return max(self.scale.shape[0], self.world_to_camera.shape[0])

    def world_to_view(self, points_world: torch.Tensor) -> torch.Tensor:
        return transform_points(self.world_to_camera.to(points_world.device), points_world)

    def project(self, points_cam: torch.Tensor) -> torch.Tensor:
        """Camera-space points ``(B, N, 3)`` -> pixel coordinates ``(B, N, 2)``."""
        s = self.scale.to(points_cam)[:, None, :]  # (B, 1, 2)
        c = self.principal_point.to(points_cam)[:, None, :]  # (B, 1, 2)
        return points_cam[..., :2] * s + c  # (B, N, 2)

    def pixel_rays(self, pixels: torch.Tensor, batch_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays ``origin = (x, y, 0)``, ``direction = (0, 0, 1)`` through pixel coordinates ``(P, 2)``."""
        batch_index = batch_index if self.scale.shape[0] > 1 else torch.zeros_like(batch_index)
        s = self.scale.to(pixels).index_select(0, batch_index)  # (P, 2)
        c = self.principal_point.to(pixels).index_select(0, batch_index)  # (P, 2)
        xy = (pixels - c) / s
        origin = torch.cat([xy, torch.zeros_like(xy[:, :1])], dim=-1)  # (P, 3)
        direction = torch.zeros_like(origin)
        direction[:, 2] = 1.0
        return origin, direction


Camera = PerspectiveCamera | OrthographicCamera


def project_points(points_world: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """World points ``(B, N, 3)`` -> pixel coordinates ``(B, N, 2)`` and camera-space depth ``(B, N)``."""
    cam = camera.world_to_view(points_world)  # (B, N, 3)
    return camera.project(cam), cam[..., 2]
