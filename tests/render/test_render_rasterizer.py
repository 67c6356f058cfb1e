"""Rasteriser checks against closed forms, OpenCV's projection and trimesh+embree ray casting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointportrait.face_models import load_face_model
from jointportrait.geometry.cameras import (
    MODEL_TO_OPENCV,
    OrthographicCamera,
    PerspectiveCamera,
    intrinsics_matrix,
    project_points,
)
from jointportrait.render import interpolate, rasterize


def _plane(z: float, half: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    verts = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])[None]
    return verts, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_fronto_parallel_plane_depth_and_normals_are_exact():
    verts, tris = _plane(5.0)
    cam = PerspectiveCamera(intrinsics_matrix(20.0, 20.0, 7.5, 7.5))
    frags = rasterize(verts, tris, cam, 16, 16)
    # the plane spans x/z in [-2, 2] -> u in [-32.5, 47.5]: it covers the whole 16x16 image
    assert frags.mask.all()
    torch.testing.assert_close(frags.depth, torch.full((1, 16, 16), 5.0))
    # winding (0, 1, 2) with x right, y down is clockwise seen from the camera: normal +z
    torch.testing.assert_close(frags.normals[0, 3, 4], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(frags.barycentrics.sum(-1), torch.ones(1, 16, 16))


def test_slanted_plane_depth_matches_ray_plane_intersection():
    # plane z = 10 + 0.5 x; ray (x', y', 1) t hits at t = 10 / (1 - 0.5 x')
    verts = torch.tensor([[-8.0, -8, 6], [8, -8, 14], [8, 8, 14], [-8, 8, 6]])[None]
    tris = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = intrinsics_matrix(30.0, 30.0, 15.5, 15.5)
    frags = rasterize(verts, tris, PerspectiveCamera(K), 32, 32)
    jj = torch.arange(32.0)[None, :].expand(32, 32)
    expected = 10.0 / (1.0 - 0.5 * (jj - 15.5) / 30.0)
    assert frags.mask.all()
    torch.testing.assert_close(frags.depth[0], expected, rtol=1e-5, atol=0)


def test_triangle_coverage_follows_pixel_centres():
    # right triangle with corners on pixel centres (0,0), (8,0), (0,8): 45 centres inside or on the edges
    verts = torch.tensor([[0.0, 0, 1], [8, 0, 1], [0, 8, 1]])[None]
    cam = OrthographicCamera(scale=[1.0, 1.0], principal_point=[0.0, 0.0])
    frags = rasterize(verts, torch.tensor([[0, 1, 2]]), cam, 10, 10)
    assert int(frags.mask.sum()) == 45
    assert frags.mask[0, 0, 8] and frags.mask[0, 4, 4] and not frags.mask[0, 5, 4]
    assert frags.triangle_id[0, 9, 9] == -1 and frags.depth[0, 9, 9] == 0
    torch.testing.assert_close(frags.depth[frags.mask], torch.ones(45))


def test_orthographic_slanted_depth():
    # plane z = 2 + 0.25 x seen orthographically with 2 px per unit: z at column j is 2 + 0.25 (j - 4) / 2
    verts = torch.tensor([[-4.0, -4, 1], [4, -4, 3], [4, 4, 3], [-4, 4, 1]])[None]
    cam = OrthographicCamera(scale=[2.0, 2.0], principal_point=[4.0, 4.0])
    frags = rasterize(verts, torch.tensor([[0, 1, 2], [0, 2, 3]]), cam, 8, 8)
    assert frags.mask.all()
    expected = 2.0 + 0.25 * (torch.arange(8.0) - 4.0) / 2.0
    torch.testing.assert_close(frags.depth[0], expected.expand(8, 8))


def test_nearest_surface_wins():
    near, tris = _plane(3.0)
    far, _ = _plane(7.0)
    verts = torch.cat([far, near], dim=1)  # far plane first, so order cannot decide
    both = torch.cat([tris, tris + 4])
    frags = rasterize(verts, both, PerspectiveCamera(intrinsics_matrix(10.0, 10.0, 4.0, 4.0)), 8, 8)
    torch.testing.assert_close(frags.depth, torch.full((1, 8, 8), 3.0))
    assert set(frags.triangle_id.unique().tolist()) <= {2, 3}


def test_projection_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(20, 3)) + [0, 0, 5]
    K = np.array([[500.0, 0, 320], [0, 480, 240], [0, 0, 1]])
    angle = np.array([0.1, -0.2, 0.05])
    R = cv2.Rodrigues(angle)[0]
    tvec = np.array([0.1, -0.3, 1.0])
    expected = cv2.projectPoints(points, angle, tvec, K, None)[0][:, 0]
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, tvec
    uv, z = project_points(torch.tensor(points)[None], PerspectiveCamera(torch.tensor(K)[None], torch.tensor(w2c)[None]))
    np.testing.assert_allclose(uv[0].numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(z[0].numpy(), points @ R[2] + tvec[2], rtol=1e-12)


def test_interpolate_gradients_match_finite_differences():
    torch.manual_seed(0)
    verts = torch.tensor([[[-2.0, -2, 5], [2, -1.5, 6], [0.5, 2, 4.5]]], dtype=torch.float64, requires_grad=True)
    attrs = torch.rand(1, 3, 2, dtype=torch.float64, requires_grad=True)
    tris = torch.tensor([[0, 1, 2]])
    cam = PerspectiveCamera(intrinsics_matrix(8.0, 8.0, 4.0, 4.0).double())

    def render(v, a):
        frags = rasterize(v, tris, cam, 8, 8)
        return interpolate(a, frags), frags.depth

    coverage = rasterize(verts.detach(), tris, cam, 8, 8).mask
    assert 10 < int(coverage.sum()) < 64
    # coverage is piecewise constant; finite differences stay inside it for small steps
    assert torch.autograd.gradcheck(lambda v, a: render(v, a)[0], (verts, attrs), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda v: render(v, attrs)[1], (verts,), eps=1e-6, atol=1e-5)


def test_batch_items_are_independent():
    verts, tris = _plane(4.0, half=1.0)
    batch = torch.cat([verts, verts + torch.tensor([0.5, 0.0, 2.0])])
    cam = PerspectiveCamera(intrinsics_matrix(12.0, 12.0, 7.5, 7.5).expand(2, 3, 3))
    frags = rasterize(batch, tris, cam, 16, 16)
    single = rasterize(batch[1:], tris, PerspectiveCamera(intrinsics_matrix(12.0, 12.0, 7.5, 7.5)), 16, 16)
    torch.testing.assert_close(frags.depth[1:], single.depth)
    assert not torch.equal(frags.mask[0], frags.mask[1])
    # one camera and one attribute set serve the whole batch
    shared = rasterize(batch, tris, PerspectiveCamera(intrinsics_matrix(12.0, 12.0, 7.5, 7.5)), 16, 16)
    torch.testing.assert_close(shared.depth, frags.depth)
    ones = interpolate(torch.ones(1, 4, 2), shared)
    torch.testing.assert_close(ones[..., 0], shared.mask.float())


def _embree_depth(vertices: np.ndarray, triangles: np.ndarray, K: np.ndarray, size: int):
    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("embreex")
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    mesh = trimesh.Trimesh(vertices, triangles, process=False)
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    dirs = np.stack([(jj - K[0, 2]) / K[0, 0], (ii - K[1, 2]) / K[1, 1], np.ones(jj.shape)], -1).reshape(-1, 3)
    loc, ray_idx, _ = RayMeshIntersector(mesh).intersects_location(np.zeros_like(dirs), dirs, multiple_hits=False)
    depth = np.zeros(size * size)
    depth[ray_idx] = loc[:, 2]
    covered = np.zeros(size * size, bool)
    covered[ray_idx] = True
    return depth.reshape(size, size), covered.reshape(size, size)


@pytest.mark.parametrize("yaw", [0.0, 0.6])
def test_face_model_depth_matches_embree(face_model_path, yaw):
    model = load_face_model(face_model_path)
    size = 96
    c, s = np.cos(yaw), np.sin(yaw)
    rot = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)
    verts = model.vertices() @ rot.T @ MODEL_TO_OPENCV.T + torch.tensor([0.0, 0.0, 60.0])
    K = intrinsics_matrix(220.0, 220.0, 47.5, 47.0)
    frags = rasterize(verts, model.triangles, PerspectiveCamera(K), size, size)
    ref, ref_cov = _embree_depth(verts[0].numpy().astype(np.float64), model.triangles.numpy(), K.numpy(), size)
    ours, cov = frags.depth[0].numpy(), frags.mask[0].numpy()
    both = ref_cov & cov
    assert both.sum() > 0.3 * size * size
    assert np.max(np.abs(ours[both] - ref[both]) / ref[both]) < 1e-4
    # coverage may differ only on silhouette pixels (a 4-neighbour is background in the reference)
    padded = np.pad(ref_cov, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & ref_cov
    exterior = ~(padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:] | ref_cov)
    differ = ref_cov != cov
    assert not (differ & (interior | exterior)).any()
