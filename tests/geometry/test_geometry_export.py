"""Point-cloud and mesh export, read back with trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from jointportrait.geometry.cameras import backproject, intrinsics_from_fov
from jointportrait.geometry.export import depth_mesh, grid_faces, point_cloud, save_geometry


def _scene(h=6, w=8):
    depth = np.full((h, w), 2.0)
    valid = np.ones((h, w), bool)
    valid[0, :3] = False
    colors = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    return backproject(depth, intrinsics=intrinsics_from_fov(h, w, 60.0)), colors, valid


def test_ply_point_cloud_round_trip(tmp_path):
    points, colors, valid = _scene()
    path = save_geometry(point_cloud(points, colors, valid), tmp_path / "cloud.ply")
    loaded = trimesh.load(path)
    assert isinstance(loaded, trimesh.PointCloud)
    assert len(loaded.vertices) == valid.sum()  # one point per valid pixel
    np.testing.assert_array_equal(loaded.colors[:, :3], colors[valid])
    # viewer frame: y up, z toward the viewer, so the camera-z 2.0 becomes -2.0
    np.testing.assert_allclose(loaded.vertices[:, 2], -2.0)
    assert loaded.vertices[0, 1] > loaded.vertices[-1, 1]  # the top row is higher


def test_grid_faces_counts_and_discontinuities():
    valid = np.ones((3, 4), bool)
    assert len(grid_faces(valid)) == 2 * 2 * 3  # two triangles per 2x2 block
    valid[0, 0] = False
    assert len(grid_faces(valid)) == 12 - 1  # only the top-left block's triangle through pixel (0, 0) goes
    depth = np.ones((3, 4))
    depth[:, 3] = 5.0  # a jump between the third and the fourth column
    assert len(grid_faces(np.ones((3, 4), bool), depth, 0.05)) == 12 - 4


@pytest.mark.parametrize("suffix", ["ply", "obj", "glb"])
def test_mesh_formats_round_trip(tmp_path, suffix):
    points, colors, valid = _scene()
    mesh = depth_mesh(points, colors, valid)
    path = save_geometry(mesh, tmp_path / f"mesh.{suffix}")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.faces) == len(grid_faces(valid)) == len(mesh.faces)
    assert len(loaded.vertices) == valid.sum()


def test_obj_point_cloud_refused(tmp_path):
    points, colors, valid = _scene()
    with pytest.raises(ValueError, match="OBJ"):
        save_geometry(point_cloud(points, colors, valid), tmp_path / "c.obj")
