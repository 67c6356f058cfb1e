"""Diffuse shading against hand-computed values and a closed-form irradiance integral (paper Suppl. 8.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jointportrait.appearance.shading import fit_sh_lighting, lambert_shading, sh_shading

Y00, Y1 = 0.5 / math.sqrt(math.pi), math.sqrt(3.0 / (4.0 * math.pi))  # real SH constants 0.282095, 0.488603


def _close(actual, desired):
    np.testing.assert_allclose(actual, desired, rtol=2e-6, atol=1e-6)


def _unit(*v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def test_lambert_hand_values():
    normals = np.array([[[0, 0, 1], [1, 0, 0], [0, 0, 0]]], np.float64)  # (1, 3, 3); the last is "no normal"
    s = lambert_shading(normals, (1, 0, 1), intensity=2.0, ambient=0.1)
    # cos 45 deg = 0.70711 for both lit normals; the zero normal stays 0
    np.testing.assert_allclose(s[0], [0.1 + 2 * 0.7071068, 0.1 + 2 * 0.7071068, 0.0], atol=1e-6)
    back = lambert_shading(normals, (-1, 0, 0))
    np.testing.assert_allclose(back[0], [0.0, 0.0, 0.0])  # facing away: clamped to 0
    with pytest.raises(ValueError):
        lambert_shading(normals, (0, 0, 0))


def test_sh_single_coefficients_by_hand():
    # expected values from the constants c1..c5 of Ramamoorthi & Hanrahan 2001, eq. 13, printed to 6 digits
    n = np.array([[_unit(0, 0, 1), _unit(1, 0, 0)]])
    coeffs = np.zeros(9)
    coeffs[0] = 1.0  # L00 -> c4 = 0.886227 everywhere
    _close(sh_shading(n, coeffs)[0], [0.886227, 0.886227])
    coeffs[:] = 0
    coeffs[2] = 1.0  # L10 -> 2 c2 z
    _close(sh_shading(n, coeffs)[0], [1.023328, 0.0])
    coeffs[:] = 0
    coeffs[6] = 1.0  # L20 -> c3 z^2 - c5
    _close(sh_shading(n, coeffs)[0], [0.743125 - 0.247708, -0.247708])
    coeffs[:] = 0
    coeffs[8] = 1.0  # L22 -> c1 (x^2 - y^2)
    _close(sh_shading(n, coeffs)[0], [0.0, 0.429043])


def test_sh_irradiance_matches_closed_form_integral():
    # Environment L(w) = 1 + w_z has SH coefficients L00 = 1 / Y00, L10 = 1 / Y1 and irradiance
    # E(n) = int (1 + w_z) max(0, n . w) dw = pi + (2 pi / 3) n_z (both terms integrate in closed form).
    coeffs = np.zeros(9)
    coeffs[0], coeffs[2] = 1.0 / Y00, 1.0 / Y1
    normals = np.array([[_unit(0, 0, 1), _unit(1, 1, 0), _unit(0.2, -0.5, -0.7), _unit(0, 0, -1)]])
    expected = math.pi + 2.0 * math.pi / 3.0 * normals[0, :, 2]
    np.testing.assert_allclose(sh_shading(normals, coeffs)[0], expected, rtol=1e-5)


def test_coloured_sh_and_fit_recovers_lighting():
    rng = np.random.default_rng(1)
    normals = rng.normal(size=(20, 20, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    coeffs = rng.normal(size=9)
    fitted = fit_sh_lighting(sh_shading(normals, coeffs), normals)
    np.testing.assert_allclose(fitted, coeffs, atol=1e-9)
    coloured = sh_shading(normals, np.stack([coeffs, 2 * coeffs, 0 * coeffs], 1))
    assert coloured.shape == (20, 20, 3)
    np.testing.assert_allclose(coloured[..., 1], 2 * coloured[..., 0])
