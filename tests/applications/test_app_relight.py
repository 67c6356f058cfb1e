"""Relighting by multiplying or by the ratio of shadings, against values worked by hand (paper Suppl. 8.2)."""

from __future__ import annotations

import numpy as np

from jointportrait.appearance.shading import lambert_shading, sh_shading
from jointportrait.applications.relight import relight_image


def test_relight_multiply_by_hand():
    image = np.full((2, 2, 3), 0.5)
    normals = np.zeros((2, 2, 3))
    normals[0] = (0, 0, 1)  # bottom row has no normal -> unchanged
    out = relight_image(image, normals, np.full((2, 2), 0.8)).image
    np.testing.assert_allclose(out[0], 0.4)
    np.testing.assert_allclose(out[1], 0.5)


def test_relight_ratio_removes_the_original_shading():
    # photo = albedo * S_old with S_old an SH shading; ratio relighting gives albedo * mean(S_old) * S_new
    rng = np.random.default_rng(2)
    normals = rng.normal(size=(16, 16, 3))
    normals[..., 2] = np.abs(normals[..., 2]) + 1.0
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    s_old = sh_shading(normals, [0.5, 0.0, 0.2, 0.1, 0, 0, 0, 0, 0])
    albedo = np.array([0.6, 0.4, 0.3])
    photo = s_old[..., None] * albedo
    s_new = lambert_shading(normals, (0.3, 0.2, 1.0), ambient=0.2)
    result = relight_image(photo, normals, s_new, mode="ratio")
    expected = albedo * s_old.mean() * s_new[..., None]
    np.testing.assert_allclose(result.image, np.clip(expected, 0, 1), atol=1e-6)
    np.testing.assert_allclose(result.original_shading, s_old / s_old.mean(), atol=1e-6)
