"""Per-image appearance metrics of Table 2 and the per-frame metrics of Table 3 (paper Sec. 5.2, 5.5).

Images are compared in [0, 1] (RGB). ``L1 = mean |x - y|`` over pixels and
channels; SSIM as in :mod:`jointportrait.evaluation.ssim`; LPIPS as in
:mod:`jointportrait.evaluation.lpips` (needs its weights). Dataset figures are
means over images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jointportrait.evaluation.ssim import ssim


def to_image_tensor(image: Any) -> torch.Tensor:
    """A PIL image, ``(H, W, 3)`` array (uint8, or float in [0, 1]) or ``(3, H, W)``/``(B, 3, H, W)`` tensor in
    [0, 1] -> float32 ``(B, 3, H, W)`` in [0, 1]."""
    if torch.is_tensor(image):
        t = image.detach().float()
        t = t[None] if t.ndim == 3 else t
    else:
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
        arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got shape {tuple(t.shape)}")
    return t


def l1_error(pred: Any, gt: Any) -> float:
    """Mean absolute difference of two images in [0, 1]."""
    x, y = to_image_tensor(pred), to_image_tensor(gt)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    return float((x.double() - y.double()).abs().mean())


def image_metrics(pred: Any, gt: Any, lpips_model: torch.nn.Module | None = None) -> dict[str, float]:
    """``l1``, ``ssim`` and, with an :class:`~jointportrait.evaluation.lpips.LPIPS` model, ``lpips`` of one image."""
    x, y = to_image_tensor(pred), to_image_tensor(gt)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    out = {"l1": l1_error(x, y), "ssim": float(ssim(x, y).mean())}
    if lpips_model is not None:
        out["lpips"] = float(lpips_model(x, y).mean())
    return out
