"""A clip of the real face scan with exact depth, for measuring the tracker (paper Sec. 5.1).

:func:`render_scan_clip` turns the scan of :mod:`jointportrait.tracking.scan`
through a range of head poses in front of a fixed pinhole camera and renders,
with the project's rasteriser, every frame's colour (the scan's photographic
texture, bilinear, 2 x 2 supersampled; the capture's lighting is baked into
the texture), its camera-space depth (exact: ray-triangle hits), the scan's
coverage and its face region. Camera space follows the tracker
(:mod:`jointportrait.tracking.params`): ``v_cam = MODEL_TO_OPENCV @ R v + t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

from jointportrait.geometry.cameras import MODEL_TO_OPENCV, PerspectiveCamera, focal_from_fov
from jointportrait.render import interpolate, rasterize
from jointportrait.tracking.scan import Scan

BACKGROUND_TOP, BACKGROUND_BOTTOM = (0.32, 0.34, 0.38), (0.55, 0.55, 0.52)  # sRGB
SUPERSAMPLE = 2


@dataclass
class ScanClip:
    """frames (F, H, W, 3) uint8 sRGB; depth (F, H, W) float32 camera z in cm (0 off the scan); face and
    coverage (F, H, W) bool; K (3, 3); rotation (F, 3, 3) head rotation in the model frame and translation
    (F, 3) cm; landmarks (F, 68, 2) the scan's 3-D landmarks projected (for checking a detector, not for
    tracking)."""

    frames: np.ndarray
    depth: np.ndarray
    face: np.ndarray
    coverage: np.ndarray
    K: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    landmarks: np.ndarray


def head_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """``R_y(yaw) R_x(pitch)`` in the model frame (+y up, +z to the viewer): positive yaw turns the face
    to the subject's left, positive pitch tilts it up (as :func:`jointportrait.data.synth.rotation_matrix`)."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return ry @ rx


def sweep_poses(frames: int, yaw_deg: float = 20.0, pitch_deg: float = 10.0) -> list[tuple[float, float]]:
    """(yaw, pitch) per frame: yaw sweeps ``-yaw_deg .. yaw_deg`` once, pitch one full period of
    ``pitch_deg * sin``."""
    t = np.linspace(0.0, 1.0, frames)
    return [(float(yaw_deg * (2 * s - 1)), float(pitch_deg * math.sin(2 * math.pi * s))) for s in t]


def _render(scan: Scan, verts: torch.Tensor, K: torch.Tensor, size: int):
    camera = PerspectiveCamera(K[None].expand(verts.shape[0], 3, 3))
    return rasterize(verts, scan.triangles, camera, size, size, normals=False)


def render_scan_clip(scan: Scan, poses: list[tuple[float, float]], size: int = 256, fov_degrees: float = 25.0,
                     distance_cm: float = 60.0) -> ScanClip:
    """Render ``scan`` at the (yaw, pitch) ``poses`` in degrees, ``size`` x ``size`` pixels, the head's
    canonical origin ``distance_cm`` in front of a camera of ``fov_degrees`` horizontal field of view."""
    num = len(poses)
    rotation = torch.tensor(np.stack([head_rotation(y, p) for y, p in poses]), dtype=torch.float32)  # (F, 3, 3)
    translation = torch.tensor([0.0, -3.0, distance_cm]).expand(num, 3)  # nose (y = -3 cm) near the centre
    rot = MODEL_TO_OPENCV @ rotation  # (F, 3, 3)
    verts = scan.vertices[None] @ rot.transpose(1, 2) + translation[:, None]  # (F, V, 3) camera space
    focal = focal_from_fov(size, fov_degrees)
    K = torch.tensor([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1.0]])

    frags = _render(scan, verts, K, size)
    depth = torch.where(frags.mask, frags.depth, torch.zeros_like(frags.depth))
    face = frags.mask & scan.face_triangles[frags.triangle_id.clamp_min(0)]

    big = size * SUPERSAMPLE  # pixel centres: x_big = (x + 0.5) * s - 0.5
    K_big = K.clone()
    K_big[:2] *= SUPERSAMPLE
    K_big[:2, 2] += (SUPERSAMPLE - 1) / 2.0
    fine = _render(scan, verts, K_big, big)
    uv = interpolate(scan.uv[None], fine)  # (F, big, big, 2)
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1)  # v up in the texture -> rows down
    texture = scan.texture.permute(2, 0, 1)[None].expand(num, -1, -1, -1)  # (F, 3, Ht, Wt)
    colour = nnf.grid_sample(texture, grid, mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    rows = torch.linspace(0, 1, big)[:, None, None]
    background = torch.tensor(BACKGROUND_TOP) * (1 - rows) + torch.tensor(BACKGROUND_BOTTOM) * rows  # (big, 1, 3)
    colour = torch.where(fine.mask[..., None], colour, background.expand(big, big, 3))
    colour = nnf.avg_pool2d(colour.permute(0, 3, 1, 2), SUPERSAMPLE).permute(0, 2, 3, 1)  # (F, H, W, 3)

    lmk = scan.landmarks[None] @ rot.transpose(1, 2) + translation[:, None]  # (F, 68, 3)
    lmk2d = lmk[..., :2] / lmk[..., 2:] * focal + (size - 1) / 2.0
    return ScanClip(
        frames=(colour.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(),
        depth=depth.float().numpy(),
        face=face.numpy(),
        coverage=frags.mask.numpy(),
        K=K.double().numpy(),
        rotation=rotation.double().numpy(),
        translation=translation.double().numpy(),
        landmarks=lmk2d.float().numpy(),
    )
