"""Surface-normal angular error from depth (paper Sec. 5.3, an addition to Table 1).

Normals are computed from depth the same way for the aligned prediction and
the ground truth, so only the shape of the surface is compared:

* back-projection with a pinhole camera: ``P(u, v) = d(u, v) ((u - cx) / fx, (v - cy) / fy, 1)``;
  without intrinsics ``fx = fy = max(H, W)`` (about 53 degrees field of view)
  and ``(cx, cy)`` = the image centre;
* tangents by central differences, ``P_u = P(u+1, v) - P(u-1, v)`` and
  ``P_v = P(u, v+1) - P(u, v-1)``; ``n = (P_u x P_v) / |P_u x P_v|``, flipped to
  face the camera (``n_z < 0``);
* a normal is valid where the pixel and its four neighbours are in the
  evaluation mask (no border pixels).

Angular error ``theta = arccos(clip(n_pred . n_gt, -1, 1))`` in degrees over
valid pixels; reported: mean, median and the percentage of pixels under
11.25, 22.5 and 30 degrees. Per image, then averaged over images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jointportrait.evaluation._arrays import as_array, as_map
from jointportrait.evaluation.depth_metrics import align_prediction

ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)


def default_intrinsics(height: int, width: int) -> np.ndarray:
    """``K`` with ``fx = fy = max(H, W)`` and the principal point at the image centre."""
    f = float(max(height, width))
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def normals_from_depth(
    depth: Any, valid: Any = None, intrinsics: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals ``(H, W, 3)`` (camera frame, facing the camera) and their validity ``(H, W)``."""
    d = as_map(depth, "depth")
    h, w = d.shape
    k = default_intrinsics(h, w) if intrinsics is None else as_array(intrinsics, "intrinsics")
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    v = np.isfinite(d) if valid is None else (as_map(valid, "valid") > 0.5) & np.isfinite(d)
    d = np.where(v, d, 0.0)
    u_grid, v_grid = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    points = np.stack([d * (u_grid - cx) / fx, d * (v_grid - cy) / fy, d], axis=-1)  # (H, W, 3)
    pu = np.zeros_like(points)
    pv = np.zeros_like(points)
    pu[:, 1:-1] = points[:, 2:] - points[:, :-2]
    pv[1:-1, :] = points[2:, :] - points[:-2, :]
    n = np.cross(pu, pv)  # (H, W, 3)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = n / np.maximum(norm, 1e-30)
    n = np.where(n[..., 2:3] > 0, -n, n)
    ok = np.zeros_like(v)
    ok[1:-1, 1:-1] = v[1:-1, 1:-1] & v[1:-1, 2:] & v[1:-1, :-2] & v[2:, 1:-1] & v[:-2, 1:-1]
    return n, ok & (norm[..., 0] > 0)


def angular_error_stats(errors_deg: np.ndarray) -> dict[str, float]:
    """Mean, median and % below each threshold of angular errors in degrees."""
    stats = {"normal_mean": float(np.mean(errors_deg)), "normal_median": float(np.median(errors_deg))}
    for thr in ANGLE_THRESHOLDS:
        stats[f"normal_within_{thr:g}"] = float(100.0 * np.mean(errors_deg < thr))
    return stats


def normal_metrics(
    pred: Any,
    gt: Any,
    mask: Any = None,
    alignment: str = "depth",
    pred_kind: str = "depth",
    intrinsics: Any = None,
) -> dict[str, float]:
    """Normal angular error of one depth prediction after the same alignment as :func:`depth_metrics`.

    Returns ``normal_mean``, ``normal_median`` (degrees) and
    ``normal_within_11.25``, ``normal_within_22.5``, ``normal_within_30`` (percent).
    """
    aligned, m = align_prediction(pred, gt, mask, alignment=alignment, pred_kind=pred_kind)
    n_pred, ok_pred = normals_from_depth(aligned, m, intrinsics)
    n_gt, ok_gt = normals_from_depth(as_map(gt, "gt"), m, intrinsics)
    ok = ok_pred & ok_gt
    if not ok.any():
        raise ValueError("no pixel has a valid normal (the evaluation mask has no interior pixel)")
    cos = np.clip(np.sum(n_pred[ok] * n_gt[ok], axis=-1), -1.0, 1.0)
    return angular_error_stats(np.degrees(np.arccos(cos)))
