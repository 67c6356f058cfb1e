"""Second-order spherical-harmonics lighting (paper Sec. 5.1 data, Suppl. 7.3 tracking, Suppl. 8.2 relighting).

Diffuse irradiance from 9 SH coefficients per colour channel, after
Ramamoorthi and Hanrahan, "An Efficient Representation for Irradiance
Environment Maps" (SIGGRAPH 2001): ``E(n) = sum_lm A_l L_lm Y_lm(n)`` with
``A_0 = pi``, ``A_1 = 2 pi / 3``, ``A_2 = pi / 4``. Coefficients are stored in
the order (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2)
as a (9, 3) array; directions are unit vectors in the frame the normals use
(camera space: OpenCV axes for the studio renderer and the tracker, the viewer frame
for relighting). One model serves the synthetic studio images, the tracker's
photometric stage and :mod:`jointportrait.appearance.shading`.
"""

from __future__ import annotations

import numpy as np
import torch

BAND_FACTORS = (np.pi,) + (2.0 * np.pi / 3.0,) * 3 + (np.pi / 4.0,) * 5


def sh_basis(directions: torch.Tensor) -> torch.Tensor:
    """Real SH basis ``Y_lm`` up to l = 2 of unit directions ``(..., 3)`` -> ``(..., 9)``."""
    x, y, z = directions.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.282095),
        0.488603 * y,
        0.488603 * z,
        0.488603 * x,
        1.092548 * x * y,
        1.092548 * y * z,
        0.315392 * (3.0 * z * z - 1.0),
        1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], dim=-1)


def irradiance(normals: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Diffuse irradiance ``(..., 3)`` at unit normals ``(..., 3)`` under SH radiance ``(9, 3)``."""
    factors = torch.tensor(BAND_FACTORS, dtype=normals.dtype, device=normals.device)  # (9,)
    weighted = coefficients.to(normals) * factors[:, None]  # (9, 3)
    return sh_basis(normals) @ weighted  # (..., 3)


def directional_light(direction: np.ndarray, color: np.ndarray) -> np.ndarray:
    """SH projection (9, 3) of a distant light of radiance ``color`` (3,) from unit ``direction`` (3,)."""
    y = sh_basis(torch.as_tensor(direction, dtype=torch.float64)).numpy()  # (9,)
    return y[:, None] * np.asarray(color, dtype=np.float64)[None, :]


def ambient_light(color: np.ndarray) -> np.ndarray:
    """SH coefficients (9, 3) of a uniform environment of radiance ``color``: irradiance ``pi * color``."""
    coeffs = np.zeros((9, 3))
    coeffs[0] = np.asarray(color, dtype=np.float64) * np.sqrt(4.0 * np.pi)
    return coeffs


def random_studio_lighting(rng: np.random.Generator) -> np.ndarray:
    """A key light from the front half (random side and height), a fill and a tinted ambient, as (9, 3).

    A white surface facing the key light gets an irradiance of about 1.
    """
    azimuth = rng.uniform(-1.1, 1.1)
    elevation = rng.uniform(-0.2, 0.8)
    # OpenCV camera axes: the light comes from the camera side (-z), up is -y
    key_dir = np.array([np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)])
    warmth = rng.uniform(-0.08, 0.08)
    key = directional_light(key_dir, np.array([1.0 + warmth, 1.0, 1.0 - warmth]) * rng.uniform(0.55, 0.8))
    fill_dir = np.array([-key_dir[0], 0.3, key_dir[2]])
    fill = directional_light(fill_dir / np.linalg.norm(fill_dir), np.full(3, rng.uniform(0.05, 0.2)))
    ambient = ambient_light(rng.uniform(0.06, 0.12) * (1.0 + rng.uniform(-0.1, 0.1, size=3)))
    return key + fill + ambient
