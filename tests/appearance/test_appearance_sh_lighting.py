"""Spherical-harmonics irradiance against closed forms (Ramamoorthi and Hanrahan 2001; paper Sec. 5.1, Suppl. 7.3)."""

from __future__ import annotations

import numpy as np
import torch

from jointportrait.appearance.sh_lighting import ambient_light, directional_light, irradiance


def test_sh_irradiance_closed_forms():
    normals = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=-1)
    # uniform environment of radiance c: irradiance pi * c everywhere
    c = np.array([0.2, 0.5, 1.0])
    np.testing.assert_allclose(irradiance(normals, torch.from_numpy(ambient_light(c))).numpy(),
                               np.pi * np.broadcast_to(c, (200, 3)), rtol=1e-5)
    # distant light: the order-2 approximation of max(0, n.l) is within 0.1 of it (Ramamoorthi-Hanrahan)
    light = np.array([0.0, 0.6, -0.8])
    e = irradiance(normals, torch.from_numpy(directional_light(light, np.ones(3))))[:, 0].numpy()
    exact = np.clip(normals.numpy() @ light, 0, None)
    assert np.abs(e - exact).max() < 0.1
