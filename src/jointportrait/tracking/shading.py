"""Image formation of the photometric stage (paper supplementary 7.3): Lambertian albedo under SH light.

Second-order spherical harmonics irradiance after Ramamoorthi and Hanrahan,
"An Efficient Representation for Irradiance Environment Maps" (SIGGRAPH 2001):
``E(n) = sum_lm A_l L_lm Y_lm(n)`` with ``A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4``,
coefficients ``(9, 3)`` in the order (0,0), (1,-1), (1,0), (1,1), (2,-2),
(2,-1), (2,0), (2,1), (2,2), directions in camera space (the same convention
as the synthetic data's lighting). Images are compared in linear RGB.
"""

from __future__ import annotations

import math

import torch

BAND_FACTORS = (math.pi,) + (2.0 * math.pi / 3.0,) * 3 + (math.pi / 4.0,) * 5


def sh_basis(directions: torch.Tensor) -> torch.Tensor:
    """Real SH basis ``Y_lm`` up to l = 2 of unit directions ``(..., 3)`` -> ``(..., 9)``."""
    x, y, z = directions.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x, 1.092548 * x * y,
        1.092548 * y * z, 0.315392 * (3.0 * z * z - 1.0), 1.092548 * x * z, 0.546274 * (x * x - y * y),
    ], dim=-1)


def irradiance(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Diffuse irradiance ``(..., 3)`` at unit normals ``(..., 3)`` under SH radiance ``(9, 3)``."""
    factors = torch.tensor(BAND_FACTORS, dtype=normals.dtype, device=normals.device)  # (9,)
    return sh_basis(normals) @ (sh.to(normals) * factors[:, None])  # (..., 3)


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> linear RGB (IEC 61966-2-1)."""
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0) + 0.055) / 1.055) ** 2.4)
