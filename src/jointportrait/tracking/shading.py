"""Image formation of the photometric stage (paper supplementary 7.3): Lambertian albedo under SH light.

The rendered colour is ``albedo * E(n)`` in linear RGB, with the irradiance
``E`` of 9 SH coefficients per channel from
:func:`jointportrait.data.sh_lighting.irradiance` (the synthetic data's
lighting model, camera-space normals); frames are converted from sRGB first.
"""

from __future__ import annotations

import torch

from jointportrait.data.sh_lighting import irradiance

__all__ = ["irradiance", "srgb_to_linear"]


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> linear RGB (IEC 61966-2-1)."""
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0) + 0.055) / 1.055) ** 2.4)
