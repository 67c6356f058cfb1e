"""Mesh rendering: a batched PyTorch rasteriser and mesh / camera-file I/O (paper Sec. 5.1).

The cameras it renders through are :mod:`jointportrait.geometry.cameras`.
"""

from jointportrait.render.rasterizer import Fragments, interpolate, rasterize, vertex_normals

__all__ = ["Fragments", "interpolate", "rasterize", "vertex_normals"]
