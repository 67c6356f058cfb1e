"""Relative-depth metrics of Table 1 (paper Sec. 5.2-5.3; MiDaS / LDM3D protocol).

Conventions (also in docs/EVALUATION.md):

* One image at a time. Dataset figures are the mean over images of the
  per-image values (not a pooled mean over all pixels).
* The evaluation mask ``M`` is the user's mask (face skin region) AND valid
  ground truth (finite, > 0) AND a finite prediction.
* The prediction is affine-invariant (the model outputs relative depth in
  [0, 1], larger = farther), so before measuring it is aligned to the ground
  truth by least squares over ``M`` (closed-form normal equations,
  :func:`jointportrait.alignment.align_scale_shift`):

  - ``alignment="depth"`` (default): ``a = s p + t`` with
    ``(s, t) = argmin sum_M (s p + t - g)^2``.
  - ``alignment="disparity"``: the prediction's disparity ``q`` (``1 / p`` for
    a depth prediction, ``p`` itself with ``pred_kind="disparity"``) is fit to
    ``1 / g``; the aligned depth is ``a = 1 / max(s q + t, 1 / (10 max_M g))``
    (the floor keeps ``a`` finite and at most 10x the farthest ground truth).
    Depth predictions are floored at ``1e-3 max_M p`` before inversion.
  - ``alignment="none"``: ``a = p`` (metric predictions).

* Metrics over ``M`` (``n`` pixels)::

      AbsRel = (1/n) sum |a - g| / g
      delta1 = (1/n) #{ max(a/g, g/a) < 1.25 }      (a <= 0 counts as a miss)
      RMSE   = sqrt((1/n) sum (a - g)^2)             (in the ground truth's unit)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jointportrait.alignment import align_scale_shift
from jointportrait.evaluation._arrays import as_map

ALIGNMENTS = ("depth", "disparity", "none")
PRED_KINDS = ("depth", "disparity")
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


def align_prediction(
    pred: Any,
    gt: Any,
    mask: Any = None,
    alignment: str = "depth",
    pred_kind: str = "depth",
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned depth ``a`` (H, W) and the evaluation mask ``M`` (H, W) for one image (see module docstring)."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if pred_kind not in PRED_KINDS:
        raise ValueError(f"pred_kind must be one of {PRED_KINDS}, got {pred_kind!r}")
    p, g = as_map(pred, "pred"), as_map(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred has shape {p.shape}; the ground truth has {g.shape}")
    m = evaluation_mask(p, g, None if mask is None else as_map(mask, "mask"))
    if not m.any():
        raise ValueError("the evaluation mask is empty (no pixel with mask, valid ground truth and finite prediction)")
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
    return aligned, m


def depth_metrics(
    pred: Any,
    gt: Any,
    mask: Any = None,
    alignment: str = "depth",
    pred_kind: str = "depth",
) -> dict[str, float]:
    """AbsRel, delta1 and RMSE of one depth prediction ``(H, W)`` against ground truth ``(H, W)``.

    ``pred``, ``gt`` and the optional ``mask`` (nonzero = evaluate) are NumPy
    arrays or tensors of one image. Returns ``{"abs_rel", "delta1", "rmse"}``;
    formulas, mask and alignment conventions in the module docstring.
    """
    a, m = align_prediction(pred, gt, mask, alignment=alignment, pred_kind=pred_kind)
    g = as_map(gt, "gt")[m]
    a = a[m]
    ratio = np.where(a > 0, np.maximum(a / g, g / np.where(a > 0, a, 1.0)), np.inf)
    return {
        "abs_rel": float(np.mean(np.abs(a - g) / g)),
        "delta1": float(np.mean(ratio < DELTA1_THRESHOLD)),
        "rmse": float(np.sqrt(np.mean((a - g) ** 2))),
    }
