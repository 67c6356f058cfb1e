"""Diffuse shading from normals (paper Suppl. 8.2: "a diffuse shading layer multiplied with the image").

Two light models, both in the viewer frame of :mod:`jointportrait.geometry.normals`
(x right, y up, z toward the viewer):

- a directional light: Lambert ``S = ambient + intensity * max(0, n . l)`` with ``l`` the
  unit direction TOWARD the light;
- 9 spherical-harmonics (SH) coefficients of the distant lighting, order
  ``L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22``, rendered as irradiance
  ``E(n) = sum_lm A_l L_lm Y_lm(n)`` (Ramamoorthi and Hanrahan, SIGGRAPH 2001), with the
  basis and band factors of :mod:`jointportrait.appearance.sh_lighting` (shared with the
  synthetic studio data and the tracker).

:func:`fit_sh_lighting` inverts the SH model by least squares, which estimates the
shading already in a photo (for relighting by shading ratio).
"""

from __future__ import annotations

import numpy as np
import torch

from jointportrait.appearance.sh_lighting import BAND_FACTORS, sh_basis


def lambert_shading(normals: np.ndarray, light_direction, intensity: float = 1.0,
                    ambient: float = 0.0) -> np.ndarray:
    """Shading ``(H, W)`` of unit ``normals`` ``(H, W, 3)`` under a directional light; zero normals get 0."""
    light = np.asarray(light_direction, np.float64).reshape(3)
    norm = np.linalg.norm(light)
    if norm == 0 or not np.isfinite(norm):
        raise ValueError(f"light direction must be a non-zero finite 3-vector, got {light_direction}")
    n = np.asarray(normals, np.float64)
    shade = ambient + intensity * np.clip(n @ (light / norm), 0.0, None)
    return np.where(np.any(n != 0, axis=-1), shade, 0.0)


def sh_irradiance_basis(normals: np.ndarray) -> np.ndarray:
    """The 9 irradiance basis functions ``A_l Y_lm(n)`` ``(..., 9)``, so that ``E(n) = basis(n) @ L``."""
    n = torch.from_numpy(np.asarray(normals, np.float64))
    return sh_basis(n).numpy() * np.asarray(BAND_FACTORS)  # (..., 9)


def sh_shading(normals: np.ndarray, coefficients) -> np.ndarray:
    """Irradiance ``(H, W)`` for 9 SH coefficients, or ``(H, W, 3)`` for ``(9, 3)`` coloured ones.

    Zero normals (invalid pixels) get 0.
    """
    coeffs = np.asarray(coefficients, np.float64)
    if coeffs.shape not in ((9,), (9, 3)):
        raise ValueError(f"SH lighting needs 9 coefficients (or 9 x 3), got shape {coeffs.shape}")
    n = np.asarray(normals, np.float64)
    shade = sh_irradiance_basis(n) @ coeffs
    valid = np.any(n != 0, axis=-1)
    return np.where(valid[..., None] if shade.ndim == 3 else valid, shade, 0.0)


def fit_sh_lighting(intensity: np.ndarray, normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Least-squares SH coefficients ``(9,)`` with ``sh_shading(normals, L) ~ intensity`` over ``mask``.

    With a constant albedo this is the lighting of the photo up to the albedo's scale; pixels
    with zero normals are ignored. Raises ``ValueError`` with fewer than 9 usable pixels.
    """
    n = np.asarray(normals, np.float64)
    valid = np.any(n != 0, axis=-1) & np.isfinite(np.asarray(intensity, np.float64))
    if mask is not None:
        valid &= np.asarray(mask, bool)
    if valid.sum() < 9:
        raise ValueError("fitting 9 SH coefficients needs at least 9 pixels with valid normals")
    coeffs, *_ = np.linalg.lstsq(sh_irradiance_basis(n[valid]), np.asarray(intensity, np.float64)[valid], rcond=None)
    return coeffs
