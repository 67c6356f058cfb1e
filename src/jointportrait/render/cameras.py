"""Cameras of the depth renderer (paper Sec. 5.1: depth rendered from registered meshes).

Convention (OpenCV): camera space has x right, y down, z forward (into the
scene), so visible points have z > 0 and depth is camera-space z (larger =
farther). Pixel (row i, column j) samples the image point (u, v) = (j, i):
pixel centres lie on integer coordinates, exactly as ``cv2.projectPoints``
places them. A perspective camera maps a camera-space point to
``(u, v) = K[:2] @ (x/z, y/z, 1)``; an orthographic one to
``u = sx * x + cx, v = sy * y + cy``. ``world_to_camera`` is a 4x4 rigid
transform; batches carry one camera per item.

Face models use +y up, +z towards the viewer (ICT-FaceKit); :data:`MODEL_TO_OPENCV`
turns such a frame into the OpenCV one (x kept, y and z flipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

# diag(1, -1, -1): a y-up, z-towards-viewer frame -> x right, y down, z forward.
MODEL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def transform_points(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply 4x4 transforms ``(B, 4, 4)`` to points ``(B, N, 3)``."""
    rot = matrix[:, :3, :3].to(points.dtype)  # (B, 3, 3)
    trans = matrix[:, :3, 3].to(points.dtype)  # (B, 3)
    return points @ rot.transpose(1, 2) + trans[:, None, :]  # (B, N, 3)


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
        K = self.K.to(points_cam)  # (B, 3, 3)
        xy = points_cam[..., :2] / points_cam[..., 2:3]  # (B, N, 2)
        u = K[:, None, 0, 0] * xy[..., 0] + K[:, None, 0, 1] * xy[..., 1] + K[:, None, 0, 2]
        v = K[:, None, 1, 1] * xy[..., 1] + K[:, None, 1, 2]
        return torch.stack([u, v], dim=-1)  # (B, N, 2)

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


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> torch.Tensor:
    """``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` as a (3, 3) float32 tensor."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)
