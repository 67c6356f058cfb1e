"""Diffuse shading from normals (paper Suppl. 8.2: "a diffuse shading layer multiplied with the image").

Two light models, both in the viewer frame of :mod:`jointportrait.applications.normals`
(x right, y up, z toward the viewer):

- a directional light: Lambert ``S = ambient + intensity * max(0, n . l)`` with ``l`` the
  unit direction TOWARD the light;
- 9 spherical-harmonics (SH) coefficients of the distant lighting, order
  ``L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22``, rendered as irradiance with the
  closed form of Ramamoorthi and Hanrahan (SIGGRAPH 2001, eq. 13).

:func:`fit_sh_lighting` inverts the SH model by least squares, which estimates the
shading already in a photo (for relighting by shading ratio).
"""

from __future__ import annotations

import numpy as np

# Ramamoorthi & Hanrahan 2001, eq. 13
C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708


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
    """The 9 irradiance basis functions ``(..., 9)`` with ``E(n) = basis(n) @ L`` (R&H 2001, eq. 13)."""
    n = np.asarray(normals, np.float64)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    one = np.ones_like(x)
    return np.stack([
        C4 * one,  # L00
        2 * C2 * y,  # L1-1
        2 * C2 * z,  # L10
        2 * C2 * x,  # L11
        2 * C1 * x * y,  # L2-2
        2 * C1 * y * z,  # L2-1
        C3 * z * z - C5,  # L20
        2 * C1 * x * z,  # L21
        C1 * (x * x - y * y),  # L22
    ], axis=-1)


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
