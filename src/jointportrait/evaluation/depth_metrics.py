"""Relative-depth metrics of Table 1 (paper Sec. 5.2-5.3; the paper cites the MiDaS and LDM3D protocols).

Conventions (also in docs/EVALUATION.md):

* One image at a time. Dataset figures are the mean over images of the
  per-image values (not a pooled mean over all pixels).
* The evaluation mask ``M`` is the user's mask (face skin region) AND valid
  ground truth (finite, > 0) AND a finite prediction.
* Ground-truth normalisation (``gt_normalization``, :data:`GT_NORMALIZATIONS`):

  - ``"none"`` (default): ``g`` is the ground truth as given (camera z, metric).
  - ``"minmax"``: ``g = (z - min_M z) / (max_M z - min_M z)``, the ground truth
    min-max normalised to [0, 1] inside ``M``; the pixels where ``g = 0`` (the
    nearest point) leave ``M``, since AbsRel and delta1 divide by ``g``. This is
    the reading of the paper's Table 1 scale (docs/EVALUATION.md).

* The prediction is affine-invariant (the model outputs relative depth in
  [0, 1], larger = farther), so before measuring it is aligned to ``g`` by
  least squares over ``M`` (closed-form normal equations,
  :func:`jointportrait.alignment.align_scale_shift`); :data:`ALIGNMENTS` names
  each option:

  - ``alignment="depth"`` (default): least squares in depth space, as in
    Marigold's evaluation (Ke et al. 2024): ``a = s p + t`` with
    ``(s, t) = argmin sum_M (s p + t - g)^2``.
  - ``alignment="disparity"``: least squares in disparity space, as in MiDaS
    (Ranftl et al. 2020): the prediction's disparity ``q`` (``1 / p`` for a
    depth prediction; ``p`` itself with ``pred_kind="disparity"``, for peers
    that output disparity) is fit to ``1 / g``; the aligned depth is
    ``a = 1 / max(s q + t, 1 / (10 max_M g))`` (the floor keeps ``a`` finite
    and at most 10x the farthest ground truth). Depth predictions are floored
    at ``1e-3 max_M p`` before inversion.
  - ``alignment="none"``: ``a = p`` (metric predictions).

* Metrics over ``M`` (``n`` pixels)::

      AbsRel = (1/n) sum |a - g| / g
      delta1 = (1/n) #{ max(a/g, g/a) < 1.25 }      (a <= 0 counts as a miss)
      RMSE   = sqrt((1/n) sum (a - g)^2)             (in the ground truth's unit; [0, 1] with minmax)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jointportrait.alignment import align_scale_shift
from jointportrait.evaluation._arrays import as_map

# name -> what it is (used in reports and notes)
ALIGNMENTS = {
    "depth": "least-squares scale and shift in depth space (as in Marigold's evaluation)",
    "disparity": "least-squares scale and shift in disparity space (as in MiDaS)",
    "none": "none (metric predictions)",
}
PRED_KINDS = ("depth", "disparity")
GT_NORMALIZATIONS = {
    "none": "as given (camera z)",
    "minmax": "min-max normalised to [0, 1] inside the mask (nearest pixel excluded)",
}
DELTA1_THRESHOLD = 1.25
DISPARITY_FAR_FACTOR = 10.0
PRED_FLOOR = 1e-3


def evaluation_mask(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``mask`` AND finite ground truth > 0 AND finite prediction, as a boolean ``(H, W)`` map."""
    valid = np.isfinite(gt) & (np.nan_to_num(gt, nan=0.0) > 0) & np.isfinite(pred)
    if mask is not None:
        if mask.shape != gt.shape:
            raise ValueError(f"mask has shape {mask.shape}; the ground truth has {gt.shape}")
        valid &= mask > 0.5
    return valid


def normalize_ground_truth(gt: np.ndarray, m: np.ndarray, gt_normalization: str = "none") -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """``(g, M)``: the ground truth under ``gt_normalization`` and the evaluation mask that goes with it.

    ``"none"``: ``(gt, m)``. ``"minmax"``: ``g = (gt - min_m gt) / (max_m gt - min_m gt)`` on ``m`` (NaN
    elsewhere) and ``M = m & (g > 0)``.
    """
    if gt_normalization not in GT_NORMALIZATIONS:
        raise ValueError(f"gt_normalization must be one of {tuple(GT_NORMALIZATIONS)}, got {gt_normalization!r}")
    if gt_normalization == "none":
        return gt, m
    lo, hi = float(gt[m].min()), float(gt[m].max())
    if not hi > lo:
        raise ValueError("the ground truth is constant inside the evaluation mask: min-max normalisation is undefined")
    g = np.where(m, (gt - lo) / (hi - lo), np.nan)
    return g, m & (np.nan_to_num(g, nan=0.0) > 0)


def align_prediction(
    pred: Any,
    gt: Any,
    mask: Any = None,
    alignment: str = "depth",
    pred_kind: str = "depth",
    gt_normalization: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned depth ``a`` (H, W) and the evaluation mask ``M`` (H, W) for one image (see module docstring).

    ``a`` is in the units of the normalised ground truth (:func:`normalize_ground_truth`).
    """
    aligned, _, m = _align(pred, gt, mask, alignment, pred_kind, gt_normalization)
    return aligned, m


def _align(pred: Any, gt: Any, mask: Any, alignment: str, pred_kind: str,
           gt_normalization: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, g, M)``: aligned prediction, normalised ground truth and evaluation mask."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {tuple(ALIGNMENTS)}, got {alignment!r}")
    if pred_kind not in PRED_KINDS:
        raise ValueError(f"pred_kind must be one of {PRED_KINDS}, got {pred_kind!r}")
    p, g = as_map(pred, "pred"), as_map(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred has shape {p.shape}; the ground truth has {g.shape}")
    m = evaluation_mask(p, g, None if mask is None else as_map(mask, "mask"))
    if not m.any():
        raise ValueError("the evaluation mask is empty (no pixel with mask, valid ground truth and finite prediction)")
    g, m = normalize_ground_truth(g, m, gt_normalization)
    aligned = np.full_like(g, np.nan)
    if alignment == "none":
        if pred_kind == "disparity":
            raise ValueError("alignment='none' needs a depth prediction (pred_kind='depth')")
        aligned[m] = p[m]
    elif alignment == "depth":
        if pred_kind == "disparity":
            raise ValueError("alignment='depth' needs a depth prediction; use alignment='disparity'")
        aligned[m] = align_scale_shift(p, g, m)[0][m]
    else:
        q = p
        if pred_kind == "depth":
            floor = PRED_FLOOR * max(float(np.abs(p[m]).max()), np.finfo(np.float64).tiny)
            q = 1.0 / np.maximum(p, floor)
        inverse_gt = np.divide(1.0, g, out=np.full_like(g, np.nan), where=m)
        fitted = align_scale_shift(q, inverse_gt, m)[0]
        disparity_floor = 1.0 / (DISPARITY_FAR_FACTOR * float(g[m].max()))
        aligned[m] = 1.0 / np.maximum(fitted[m], disparity_floor)
    return aligned, g, m


def depth_metrics(
    pred: Any,
    gt: Any,
    mask: Any = None,
    alignment: str = "depth",
    pred_kind: str = "depth",
    gt_normalization: str = "none",
) -> dict[str, float]:
    """AbsRel, delta1 and RMSE of one depth prediction ``(H, W)`` against ground truth ``(H, W)``.

    ``pred``, ``gt`` and the optional ``mask`` (nonzero = evaluate) are NumPy
    arrays or tensors of one image. Returns ``{"abs_rel", "delta1", "rmse"}``;
    formulas, mask, ground-truth normalisation and alignment conventions in the module docstring.
    """
    a, g, m = _align(pred, gt, mask, alignment, pred_kind, gt_normalization)
    a, g = a[m], g[m]
    ratio = np.where(a > 0, np.maximum(a / g, g / np.where(a > 0, a, 1.0)), np.inf)
    return {
        "abs_rel": float(np.mean(np.abs(a - g) / g)),
        "delta1": float(np.mean(ratio < DELTA1_THRESHOLD)),
        "rmse": float(np.sqrt(np.mean((a - g) ** 2))),
    }
