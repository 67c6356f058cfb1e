"""Cameras for turning a depth map into 3-D points (used by relighting, Suppl. 8.2, and export).

Frame: OpenCV camera coordinates (x right, y down, z forward, depth = z).
Perspective cameras use intrinsics ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with
pixel centres at integer coordinates; orthographic cameras use a pixel size (world
units per pixel). The model's relative depth in [0, 1] has no metric scale, so
:func:`relative_to_camera_depth` places it at an assumed subject distance with an
assumed depth span, both in the same (arbitrary) unit.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FOV_DEG = 40.0
DEFAULT_DISTANCE = 1.0
DEFAULT_DEPTH_RANGE = 0.3


def intrinsics_from_fov(height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics ``(3, 3)`` whose horizontal field of view is ``fov_deg``, principal point centred."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def orthographic_pixel_size(width: int, fov_deg: float = DEFAULT_FOV_DEG, distance: float = DEFAULT_DISTANCE) -> float:
    """Pixel size of an orthographic camera that covers what a ``fov_deg`` camera sees at ``distance``."""
    return 2.0 * distance * math.tan(math.radians(fov_deg) / 2.0) / width


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
        x = (u - (w - 1) / 2.0) * pixel_size
        y = (v - (h - 1) / 2.0) * pixel_size
    return np.stack([x, y, z], axis=-1)  # (H, W, 3)
