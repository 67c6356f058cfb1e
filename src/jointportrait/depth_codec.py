"""Depth as the model sees it (DESIGN.md, "Depth as the model sees it"; paper Sec. 3.2).

Affine-invariant relative depth, larger = farther. Per image, over the valid
mask, the 2nd..98th percentile range maps to [-1, 1] and is clipped; invalid
pixels (background, holes) become +1, the far plane. The model's output is
relative depth in [0, 1] (``(x + 1) / 2``). Metric depth or disparity are
conversions made outside the model.
"""

from __future__ import annotations

import torch

LOW_PERCENTILE = 0.02
HIGH_PERCENTILE = 0.98


def normalize_depth(
    depth: torch.Tensor,
    valid: torch.Tensor | None = None,
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
) -> torch.Tensor:
    """Map each depth map ``(B, 1, H, W)`` (or ``(H, W)``) to [-1, 1] by its valid percentiles.

    ``d_n = clip(2 (d - p_low) / (p_high - p_low) - 1, -1, 1)`` on valid pixels,
    ``+1`` elsewhere. A map with no valid pixel becomes all ``+1``; a constant
    valid region maps to ``-1`` so that it stays apart from the background.
    """
    squeeze = depth.ndim == 2
    d = depth[None, None] if squeeze else depth
    finite = torch.isfinite(d)
    v = finite if valid is None else (valid.view_as(d).bool() & finite)
    out = torch.ones_like(d, dtype=torch.float32)
    for i in range(d.shape[0]):
        vals = d[i][v[i]].float()
        if vals.numel() == 0:
            continue
        q = torch.quantile(vals, torch.tensor([low, high], device=vals.device)) if vals.numel() > 1 else vals.repeat(2)
        span = (q[1] - q[0]).clamp_min(1e-12)
        n = (2.0 * (d[i].float() - q[0]) / span - 1.0).clamp(-1.0, 1.0)
        out[i] = torch.where(v[i], n, torch.ones_like(n))
    return out[0, 0] if squeeze else out


def normalized_to_relative(depth_normalized: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model depth -> relative depth in [0, 1] (0 = near, 1 = far)."""
    return ((depth_normalized.clamp(-1.0, 1.0) + 1.0) / 2.0)


def relative_to_normalized(depth_relative: torch.Tensor) -> torch.Tensor:
    """Relative depth in [0, 1] -> the model's [-1, 1]."""
    return depth_relative.clamp(0.0, 1.0) * 2.0 - 1.0
