"""Surface-normal angular error from depth (paper Sec. 5.3, an addition to Table 1).

Normals come from :func:`jointportrait.geometry.normals.normals_from_depth`
(pinhole back-projection, central-difference tangents, one-sided at the image
border), applied the same way to the aligned prediction and to the ground
truth, so only the shape of the surface is compared. Without intrinsics the
camera is :func:`~jointportrait.geometry.cameras.intrinsics_from_fov`
(40 degrees horizontal field of view, centred). A normal counts where the
pixel and its four neighbours are in the evaluation mask of
:func:`~jointportrait.evaluation.depth_metrics.align_prediction`.

Angular error ``theta = arccos(clip(n_pred . n_gt, -1, 1))`` in degrees over
those pixels; reported: mean, median and the percentage of pixels under
11.25, 22.5 and 30 degrees. Per image, then averaged over images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jointportrait.evaluation._arrays import as_array, as_map
from jointportrait.evaluation.depth_metrics import align_prediction
from jointportrait.geometry.cameras import intrinsics_from_fov
from jointportrait.geometry.normals import normals_from_depth

ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)


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
    k = intrinsics_from_fov(*m.shape) if intrinsics is None else as_array(intrinsics, "intrinsics")
    n_pred = normals_from_depth(aligned, k, valid=m)  # (H, W, 3), zero where invalid
    n_gt = normals_from_depth(as_map(gt, "gt"), k, valid=m)
    ok = np.any(n_pred != 0, axis=-1) & np.any(n_gt != 0, axis=-1)
    if not ok.any():
        raise ValueError("no pixel has a valid normal (the evaluation mask has no interior pixel)")
    cos = np.clip(np.sum(n_pred[ok] * n_gt[ok], axis=-1), -1.0, 1.0)
    return angular_error_stats(np.degrees(np.arccos(cos)))
