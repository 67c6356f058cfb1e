"""Least-squares scale and shift alignment of affine-invariant depth (paper Sec. 5.3).

Relative depth is defined up to ``a * d + b``. Before comparing a prediction
with a target (evaluation) or merging ensemble members (depth estimation), the
prediction is aligned by the closed-form least squares

    (s, t) = argmin_{s, t} sum_{i in mask} (s * pred_i + t - target_i)^2,

whose normal equations give ``s = cov(pred, target) / var(pred)`` and
``t = mean(target) - s * mean(pred)`` over the masked pixels. Alignment is done
in the space of the arrays given; the caller chooses it: depth (Marigold's
evaluation and ensembling) or disparity (MiDaS's evaluation), see
:mod:`jointportrait.evaluation.depth_metrics`.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def align_scale_shift(
    pred: Array, target: Array, mask: Array | None = None
) -> tuple[Array, float | torch.Tensor, float | torch.Tensor]:
    """Align ``pred`` to ``target`` by least-squares scale and shift over ``mask``.

    Args:
        pred: prediction, numpy array or torch tensor of any shape (e.g. ``(H, W)``).
        target: target of the same shape and type.
        mask: optional boolean mask of the same shape; pixels where it is False, or where
            either input is not finite, are ignored. Default: all finite pixels.

    Returns:
        ``(aligned, scale, shift)`` with ``aligned = scale * pred + shift`` over the WHOLE map
        (same type as ``pred``). ``scale`` and ``shift`` are Python floats for numpy inputs and
        0-d tensors for torch inputs. With fewer than two usable pixels, or a constant
        prediction, the scale is 0 and the shift is the target mean (the best constant fit).
    """
    if torch.is_tensor(pred):
        p, g = pred.double(), torch.as_tensor(target, device=pred.device).double()
        valid = torch.isfinite(p) & torch.isfinite(g)
        if mask is not None:
            valid &= torch.as_tensor(mask, device=pred.device).bool()
        pv, gv = p[valid], g[valid]
        if pv.numel() == 0:
            zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
            return pred * 0, zero, zero
        pm, gm = pv.mean(), gv.mean()
        var = ((pv - pm) ** 2).sum()
        scale = ((pv - pm) * (gv - gm)).sum() / var if pv.numel() > 1 and var > 0 else torch.zeros_like(pm)
        shift = gm - scale * pm
        aligned = (scale * p + shift).to(pred.dtype)
        return aligned, scale.to(pred.dtype), shift.to(pred.dtype)
    p, g = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    valid = np.isfinite(p) & np.isfinite(g)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    pv, gv = p[valid], g[valid]
    if pv.size == 0:
        return np.zeros_like(np.asarray(pred)), 0.0, 0.0
    pm, gm = pv.mean(), gv.mean()
    var = float(((pv - pm) ** 2).sum())
    scale = float(((pv - pm) * (gv - gm)).sum() / var) if pv.size > 1 and var > 0 else 0.0
    shift = float(gm - scale * pm)
    aligned = (scale * p + shift).astype(np.result_type(np.asarray(pred).dtype, np.float32))
    return aligned, scale, shift
