"""The one camera construction: focal length, principal point, intrinsics, extrinsics, projection, back-projection."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from jointportrait.geometry.cameras import (
    MODEL_TO_OPENCV,
    backproject,
    focal_from_fov,
    intrinsics_from_fov,
    intrinsics_matrix,
    principal_point,
    project_pinhole,
    world_to_camera_matrix,
)


def test_focal_and_principal_point_by_hand():
    assert focal_from_fov(64, 90.0) == pytest.approx(32.0)  # tan(45 deg) = 1: f = size / 2
    assert focal_from_fov(100, 60.0) == pytest.approx(50.0 / math.tan(math.radians(30.0)))
    with pytest.raises(ValueError, match="field of view"):
        focal_from_fov(64, 180.0)
    assert principal_point(64) == 31.5  # pixel centres on integers
    # resampling by s maps a pixel centre x to (x + 0.5) s - 0.5, the centre included
    for scale in (0.25, 0.5, 2.0):
        assert principal_point(64, scale) == pytest.approx((31.5 + 0.5) * scale - 0.5)


def test_intrinsics_from_fov_and_the_supersampled_camera():
    K = intrinsics_from_fov(30, 40, 90.0)
    np.testing.assert_allclose(K, [[20.0, 0.0, 19.5], [0.0, 20.0, 14.5], [0.0, 0.0, 1.0]], rtol=1e-14)
    assert K.dtype == np.float64
    # the same field of view at twice the size: focal doubles, the centre moves to (2 W - 1) / 2 exactly
    K2 = intrinsics_from_fov(60, 80, 90.0)
    np.testing.assert_array_equal(K2[:2, :2], 2 * K[:2, :2])
    np.testing.assert_array_equal(K2[:2, 2], [principal_point(80), principal_point(60)])


def test_intrinsics_matrix_is_differentiable_in_tensor_entries():
    f = torch.tensor(300.0, requires_grad=True)
    K = intrinsics_matrix(f, f, 79.5, 59.5)
    assert K.dtype == torch.float32 and K.shape == (3, 3)
    uv = project_pinhole(torch.tensor([[[3.0, -1.5, 50.0]]]), K)  # (1, 1, 2)
    uv.sum().backward()
    assert f.grad.item() == pytest.approx((3.0 - 1.5) / 50.0)  # d(u + v)/df = x/z + y/z
    np.testing.assert_allclose(uv[0, 0].detach().numpy(), [79.5 + 300 * 3 / 50, 59.5 - 300 * 1.5 / 50], rtol=1e-6)
    assert intrinsics_matrix(1.0, 2.0, 3.0, 4.0, dtype=torch.float64).dtype == torch.float64


def test_projection_matches_opencv_and_clamps_depth():
    rng = np.random.default_rng(0)
    points = rng.uniform([-5, -5, 20], [5, 5, 60], size=(10, 3))
    K = np.array([[120.0, 0.0, 31.5], [0.0, 110.0, 30.5], [0.0, 0.0, 1.0]])
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, None)
    ours = project_pinhole(torch.from_numpy(points)[None], torch.from_numpy(K))[0].numpy()
    np.testing.assert_allclose(ours, expected[:, 0], rtol=1e-10)
    behind = torch.tensor([[[1.0, 2.0, -5.0]]])
    uv = project_pinhole(behind, torch.from_numpy(K).float(), min_depth=1e-3)
    np.testing.assert_allclose(uv[0, 0].numpy(), [31.5 + 120.0 * 1e3, 30.5 + 110.0 * 2e3], rtol=1e-5)


def test_extrinsics_and_the_portrait_camera():
    centre = np.array([0.0, -2.0, 80.0])
    w2c = world_to_camera_matrix(MODEL_TO_OPENCV.double().numpy(), centre)
    np.testing.assert_array_equal(w2c[3], [0, 0, 0, 1])
    np.testing.assert_allclose(w2c @ np.append(centre, 1.0), [0, 0, 0, 1])  # the camera sits at the origin
    # a point 80 units in front of it along the model's -z axis is on the optical axis, 80 deep
    np.testing.assert_allclose(w2c @ [0.0, -2.0, 0.0, 1.0], [0, 0, 80, 1])
    # model +y (up) is image -y (up the picture)
    np.testing.assert_allclose(w2c[:3, :3] @ [0.0, 1.0, 0.0], [0, -1, 0])


def test_backproject_inverts_the_projection():
    K = intrinsics_from_fov(24, 32, 50.0)
    depth = np.random.default_rng(1).uniform(1.0, 2.0, size=(24, 32))
    points = backproject(depth, intrinsics=K)  # (H, W, 3)
    uv = project_pinhole(torch.from_numpy(points.reshape(1, -1, 3)), torch.from_numpy(K))[0].numpy()
    v, u = np.mgrid[0:24, 0:32]
    np.testing.assert_allclose(uv, np.stack([u, v], -1).reshape(-1, 2), atol=1e-9)
    ortho = backproject(depth, pixel_size=0.5)
    np.testing.assert_allclose(ortho[0, 0, :2], [-15.5 * 0.5, -11.5 * 0.5])
    with pytest.raises(ValueError, match="exactly one"):
        backproject(depth)
