"""Mesh rendering: cameras, a batched PyTorch rasteriser and mesh I/O (paper Sec. 5.1)."""

from jointportrait.render.cameras import (
    MODEL_TO_OPENCV,
    OrthographicCamera,
    PerspectiveCamera,
    intrinsics_matrix,
    project_points,
    transform_points,
)
from jointportrait.render.rasterizer import Fragments, interpolate, rasterize, vertex_normals

__all__ = [
    "MODEL_TO_OPENCV",
    "Fragments",
    "OrthographicCamera",
    "PerspectiveCamera",
    "interpolate",
    "intrinsics_matrix",
    "project_points",
    "rasterize",
    "transform_points",
    "vertex_normals",
]
