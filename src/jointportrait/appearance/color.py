"""sRGB <-> linear RGB (IEC 61966-2-1), as torch functions.

Lighting and shading are computed in linear RGB (the synthetic studio renderer, the
tracker's photometric stage); images on disk are sRGB. The transfer function is
``C_lin = C / 12.92`` for ``C <= 0.04045``, else ``((C + 0.055) / 1.055) ** 2.4``, and its
inverse ``C = 12.92 C_lin`` for ``C_lin <= 0.0031308``, else ``1.055 C_lin ** (1 / 2.4) - 0.055``.
"""

from __future__ import annotations

import torch


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB values (any shape, nominally in [0, 1]) -> linear RGB, same dtype; negatives map to <= 0."""
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear RGB (any shape) -> sRGB in [0, 1]; the input is clipped to [0, 1] first."""
    c = linear.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.clamp_min(1e-8) ** (1 / 2.4) - 0.055)
