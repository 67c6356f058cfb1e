"""Properties of normals from depth (paper Suppl. 8.2) over generated depth maps and cameras."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jointportrait.geometry.cameras import intrinsics_from_fov
from jointportrait.geometry.normals import normals_from_depth, normals_from_points

SIDES = st.integers(2, 12)


@st.composite
def depth_maps(draw, low=0.5, high=5.0):
    h, w = draw(SIDES), draw(SIDES)
    return draw(arrays(np.float64, (h, w), elements=st.floats(low, high)))


@given(depth_maps(), st.floats(1.0, 170.0))
def test_normals_are_unit_or_zero(depth, fov):
    n = normals_from_depth(depth, intrinsics_from_fov(*depth.shape, fov))
    length = np.linalg.norm(n, axis=-1)
    assert np.isfinite(n).all() and np.all((np.abs(length - 1) < 1e-9) | (length == 0))


@given(depth_maps(), st.floats(1e-3, 1.0))
def test_orthographic_normals_face_the_viewer(depth, pixel_size):
    """Orthographic: the normal's z is pixel_size^2 / |n| > 0 whatever the depth."""
    n = normals_from_depth(depth, pixel_size=pixel_size)
    assert (n[..., 2] > 0).all()


@given(SIDES, SIDES, st.floats(-2.0, 2.0), st.floats(-2.0, 2.0), st.floats(1.0, 5.0), st.floats(0.01, 1.0))
def test_a_plane_has_its_analytic_normal(h, w, gx, gy, z0, s):
    """z = z0 + gx u + gy v seen orthographically (pixel size s): n = (gx, -gy, s) / |.| in the viewer frame."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    n = normals_from_depth(z0 + gx * u + gy * v, pixel_size=s)
    expected = np.array([gx, -gy, s]) / np.linalg.norm([gx, -gy, s])
    np.testing.assert_allclose(n, np.broadcast_to(expected, n.shape), atol=1e-9)


@given(depth_maps(), st.data())
def test_invalid_pixels_and_their_neighbours_get_zero(depth, data):
    h, w = depth.shape
    i, j = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    valid = np.ones_like(depth, bool)
    valid[i, j] = False
    n = normals_from_depth(depth, pixel_size=0.1, valid=valid)
    for di, dj in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        if 0 <= i + di < h and 0 <= j + dj < w:
            assert (n[i + di, j + dj] == 0).all()


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 5, 3), (5, 1, 3), (4, 4)])
def test_too_small_is_a_clear_error(shape):
    with pytest.raises(ValueError, match="at least|H, W >= 2"):
        normals_from_points(np.zeros(shape))
