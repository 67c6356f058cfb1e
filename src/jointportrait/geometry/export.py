"""Depth -> 3-D geometry files: a coloured point cloud (PLY) or a triangle mesh (PLY, OBJ, GLB).

Points come from :func:`jointportrait.geometry.cameras.backproject` (OpenCV frame).
Files are written in the usual 3-D viewer frame (x right, y up, z toward the viewer), so a
portrait opens upright and facing the user. A mesh splits each 2x2 block of pixels
into two triangles, keeps those whose three pixels are valid, and drops those that span
a depth discontinuity (a jump larger than ``max_depth_jump`` times the local depth), so
the face does not melt into the background. Writing is done by trimesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointportrait.geometry.cameras import OPENCV_TO_VIEWER

EXPORT_FORMATS = ("ply", "obj", "glb")


def point_cloud(points: np.ndarray, colors: np.ndarray | None, valid: np.ndarray):
    """A ``trimesh.PointCloud`` of the ``valid`` pixels of ``points`` ``(H, W, 3)``, coloured by ``colors`` (uint8)."""
    import trimesh

    valid = np.asarray(valid, bool)
    verts = np.asarray(points, np.float64)[valid] * OPENCV_TO_VIEWER  # (P, 3)
    rgba = None
    if colors is not None:
        c = np.asarray(colors)[valid]
        rgba = np.concatenate([c, np.full((len(c), 1), 255, np.uint8)], axis=1)
    return trimesh.PointCloud(verts, colors=rgba)


def grid_faces(valid: np.ndarray, depth: np.ndarray | None = None, max_depth_jump: float = 0.05) -> np.ndarray:
    """Triangles ``(F, 3)`` over an ``(H, W)`` pixel grid (row-major vertex ids): two per 2x2 block, each kept
    when its three pixels are valid.

    With ``depth``, a triangle whose depth spread exceeds ``max_depth_jump`` times its smallest
    depth is dropped (0 disables the check).
    """
    valid = np.asarray(valid, bool)
    h, w = valid.shape
    ids = np.arange(h * w).reshape(h, w)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]  # top-left, top-right, bottom-left, ...
    # counter-clockwise as seen by the viewer once y is flipped to point up
    tris = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    flat = valid.reshape(-1)
    keep = flat[tris].all(axis=1)
    if depth is not None and max_depth_jump > 0:
        z = np.asarray(depth, np.float64).reshape(-1)[tris]  # (F, 3)
        keep &= (z.max(1) - z.min(1)) <= max_depth_jump * np.abs(z).min(1)
    return tris[keep]


def depth_mesh(points: np.ndarray, colors: np.ndarray | None, valid: np.ndarray, max_depth_jump: float = 0.05):
    """A ``trimesh.Trimesh`` over the pixel grid (unused vertices removed), vertex-coloured by ``colors``."""
    import trimesh

    h, w = np.asarray(valid).shape
    pts = np.asarray(points, np.float64)
    faces = grid_faces(valid, pts[..., 2], max_depth_jump)
    verts = pts.reshape(-1, 3) * OPENCV_TO_VIEWER
    vcol = None
    if colors is not None:
        c = np.asarray(colors).reshape(-1, 3)
        vcol = np.concatenate([c, np.full((h * w, 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(verts, faces, vertex_colors=vcol, process=False)
    mesh.remove_unreferenced_vertices()
    return mesh


def save_geometry(geometry, path: str | Path) -> Path:
    """Write a trimesh point cloud or mesh; the format comes from the suffix (.ply, .obj, .glb)."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {path.suffix!r}; expected one of {EXPORT_FORMATS}")
    if suffix == "obj" and not hasattr(geometry, "faces"):
        raise ValueError("OBJ export needs a mesh; write point clouds as .ply")
    geometry.export(path, file_type=suffix)
    return path
