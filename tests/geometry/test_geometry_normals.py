"""Normals from depth against analytic normals of a rendered sphere and plane (perspective and orthographic)."""

from __future__ import annotations

import numpy as np

from jointportrait.geometry.cameras import backproject, intrinsics_from_fov
from jointportrait.geometry.normals import normals_from_depth, normals_to_image

H = W = 96
TO_VIEWER = np.array([1.0, -1.0, -1.0])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def _rays(k: np.ndarray) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)  # (H, W, 3), z = 1


def _perspective_sphere(center, radius, k):
    """Depth z = t of the first ray/sphere hit (rays with unit z), and the analytic normal (viewer frame)."""
    r, c = _rays(k), np.asarray(center, np.float64)
    b, a = r @ c, (r * r).sum(-1)
    disc = b * b - a * (c @ c - radius**2)
    hit = disc > 0
    t = np.where(hit, (b - np.sqrt(np.where(hit, disc, 0))) / a, np.nan)
    normal = (t[..., None] * r - c) / radius * TO_VIEWER
    return t, hit, normal


def test_fronto_parallel_plane_faces_the_viewer():
    k = intrinsics_from_fov(H, W, 50.0)
    n = normals_from_depth(np.full((H, W), 2.0), intrinsics=k)
    np.testing.assert_allclose(n, np.broadcast_to([0.0, 0.0, 1.0], n.shape), atol=1e-12)
    assert (normals_to_image(n)[0, 0] == [128, 128, 255]).all()


def test_tilted_plane_perspective_exact():
    # plane n . P = d in the OpenCV frame through (0, 0, 3), facing the camera
    k = intrinsics_from_fov(H, W, 60.0)
    n = np.array([0.3, -0.2, -1.0]) / np.linalg.norm([0.3, -0.2, -1.0])
    d = n @ np.array([0.0, 0.0, 3.0])
    depth = d / (_rays(k) @ n)  # t with unit-z rays is the depth
    normals = normals_from_depth(depth, intrinsics=k)
    # a plane's tangents lie in the plane exactly, so the cross product is the normal to rounding
    assert _angle_deg(normals, n * TO_VIEWER).max() < 1e-4  # degrees; arccos near 1 has ~1e-6 degree rounding


def test_tilted_plane_orthographic_exact():
    s = 0.01
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = (u - (W - 1) / 2) * s, (v - (H - 1) / 2) * s
    depth = 2.0 + 0.5 * x - 0.25 * y  # z = a x + b y + c: OpenCV normal toward camera ~ (a, b, -1)
    expected = np.array([0.5, -0.25, -1.0]) / np.linalg.norm([0.5, -0.25, -1.0]) * TO_VIEWER
    normals = normals_from_depth(depth, pixel_size=s)
    assert _angle_deg(normals, expected).max() < 1e-4  # degrees; arccos near 1 has ~1e-6 degree rounding


def test_sphere_perspective_matches_analytic_normals():
    k = intrinsics_from_fov(H, W, 40.0)
    depth, hit, expected = _perspective_sphere((0.1, -0.05, 3.0), 0.9, k)
    normals = normals_from_depth(depth, intrinsics=k, valid=hit)
    # away from the silhouette, where differences straddle the edge or the surface turns fast per pixel
    inner = hit & (expected[..., 2] > 0.6)
    err = _angle_deg(normals[inner], expected[inner])
    assert inner.sum() > 4000
    assert err.max() < 0.5 and err.mean() < 0.1
    assert (normals[~hit] == 0).all()  # no normal off the sphere


def test_sphere_orthographic_matches_analytic_normals():
    s, radius = 0.02, 0.8
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = (u - (W - 1) / 2) * s, (v - (H - 1) / 2) * s
    rho2 = radius**2 - x**2 - y**2
    hit = rho2 > 0
    depth = np.where(hit, 5.0 - np.sqrt(np.where(hit, rho2, 0.0)), np.nan)
    expected = np.stack([x, y, depth - 5.0], -1) / radius * TO_VIEWER
    normals = normals_from_depth(depth, pixel_size=s)
    inner = hit & (expected[..., 2] > 0.6)
    err = _angle_deg(normals[inner], expected[inner])
    assert err.max() < 0.5 and err.mean() < 0.1
    # the sphere's visible pole faces the viewer: (0, 0, 1); a point right of centre leans right (+x)
    assert normals[H // 2, W // 2 + 20, 0] > 0.3 and normals[H // 2 - 20, W // 2, 1] > 0.3  # above centre -> +y (up)


def test_backproject_perspective_point_by_hand():
    k = np.array([[100.0, 0, 10.0], [0, 50.0, 5.0], [0, 0, 1]])
    depth = np.full((8, 16), 2.0)
    p = backproject(depth, intrinsics=k)
    # pixel (u=15, v=7): X = 2 (15 - 10) / 100 = 0.1, Y = 2 (7 - 5) / 50 = 0.08
    np.testing.assert_allclose(p[7, 15], [0.1, 0.08, 2.0])
