"""Depth accuracy of a tracked clip against known depth (paper Sec. 5.1 pseudo ground truth, checked on
synthetic clips): AbsRel after a least-squares scale and shift alignment.

A local copy of the project's evaluation convention, kept here until the
shared ``jointportrait.alignment`` / ``jointportrait.evaluation`` modules are
merged.
"""

from __future__ import annotations

import numpy as np


def aligned_abs_rel(predicted: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """``mean(|s p + t - g| / g)`` over ``mask``, with ``(s, t) = argmin sum (s p + t - g)^2`` over the mask.

    All arrays share one shape; the mask should already exclude pixels where either depth is invalid.
    """
    p = predicted[mask].astype(np.float64)
    g = target[mask].astype(np.float64)
    if p.size < 2:
        raise ValueError("aligned_abs_rel needs at least two valid pixels")
    design = np.stack([p, np.ones_like(p)], axis=1)  # (N, 2)
    (scale, shift), *_ = np.linalg.lstsq(design, g, rcond=None)
    return float(np.mean(np.abs(scale * p + shift - g) / g))
