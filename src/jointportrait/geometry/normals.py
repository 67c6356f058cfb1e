"""Surface normals from a depth map (paper Suppl. 8.2, "normals from the generated depth").

The depth is back-projected to points ``P(u, v)`` (:func:`jointportrait.geometry.cameras.backproject`,
perspective or orthographic), and the normal is the normalised cross product of
the central-difference tangents ``dP/dv x dP/du``, which points toward the camera.

Normals are returned in the VIEWER frame used for lighting: x right, y up, z out
of the screen toward the viewer (OpenGL camera frame), so a surface facing the
camera has normal ``(0, 0, 1)``. Pixels that are invalid, or next to an invalid
pixel (their differences would straddle a hole), get a zero normal.
"""

from __future__ import annotations

import numpy as np

from jointportrait.geometry.cameras import OPENCV_TO_VIEWER, backproject


def normals_from_points(points: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Points ``(H, W, 3)`` in the OpenCV frame -> unit normals ``(H, W, 3)`` in the viewer frame.

    Needs at least 2 x 2 points (a tangent is a difference of neighbours); raises ``ValueError`` otherwise.
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or p.shape[-1] != 3 or min(p.shape[:2]) < 2:
        raise ValueError(f"points: expected shape (H, W, 3) with H, W >= 2, got {p.shape}")
    d_du = np.gradient(p, axis=1)  # (H, W, 3)
    d_dv = np.gradient(p, axis=0)
    n = np.cross(d_dv, d_du)  # toward the camera (-z in the OpenCV frame)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 0, n / np.maximum(norm, 1e-300), 0.0)
    n = n * OPENCV_TO_VIEWER  # OpenCV (x right, y down, z forward) -> viewer (x right, y up, z out)
    ok = np.isfinite(n).all(axis=-1)
    if valid is not None:
        ok &= _erode(np.asarray(valid, bool))
    return np.where(ok[..., None], n, 0.0)


def normals_from_depth(depth: np.ndarray, intrinsics: np.ndarray | None = None, pixel_size: float | None = None,
                       valid: np.ndarray | None = None) -> np.ndarray:
    """Camera-z depth ``(H, W)`` -> unit normals ``(H, W, 3)`` (viewer frame); see :func:`backproject`."""
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) if valid is None else (np.asarray(valid, bool) & np.isfinite(depth))
    return normals_from_points(backproject(np.where(valid, depth, 0.0), intrinsics, pixel_size), valid)


def normals_to_image(normals: np.ndarray) -> np.ndarray:
    """Unit normals ``(H, W, 3)`` -> uint8 RGB normal map ``(n + 1) / 2`` (facing the viewer = (128, 128, 255))."""
    n = np.asarray(normals, np.float64)
    rgb = np.clip((n + 1.0) / 2.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb[~np.any(n != 0, axis=-1)] = 0
    return rgb


def _erode(mask: np.ndarray) -> np.ndarray:
    """A pixel survives when it and its 4 neighbours are valid (image borders count as valid)."""
    padded = np.pad(mask, 1, mode="edge")
    return (mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
