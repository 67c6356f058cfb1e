"""Reading meshes and camera files for ``jointportrait render-depth`` (paper Sec. 5.1: depth from registered meshes).

Meshes: anything trimesh reads (OBJ, PLY, GLB, STL, OFF, ...); a scene is
flattened into one triangle mesh in world coordinates. Cameras: a JSON object
``{"intrinsics": 3x3, "world_to_camera": 4x4, "width": W, "height": H}`` (OpenCV
axes, see :mod:`jointportrait.geometry.cameras`), or a list of them for several
views; an optional ``"name"`` names the outputs of a view.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, MissingPathError

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")


@dataclass(frozen=True)
class CameraSpec:
    name: str
    intrinsics: np.ndarray  # (3, 3)
    world_to_camera: np.ndarray  # (4, 4)
    width: int
    height: int


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a mesh file (scenes are flattened)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such mesh file")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        raise InputError(f"{path}: not a readable mesh ({type(exc).__name__}: {exc})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"{path}: file holds no triangles")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        raise InputError(f"{path}: mesh has non-finite vertex coordinates")
    return vertices, np.asarray(mesh.faces, dtype=np.int64)


def _matrix(value, shape: tuple[int, int], key: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.isfinite(array).all():
        raise InputError(f"{where}: {key!r} must be a {shape[0]}x{shape[1]} list of finite numbers")
    return array


def parse_camera(obj: object, where: str, default_name: str) -> CameraSpec:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: a camera must be a JSON object")
    missing = [k for k in ("intrinsics", "world_to_camera", "width", "height") if k not in obj]
    if missing:
        raise InputError(f"{where}: camera lacks {', '.join(missing)}")
    K = _matrix(obj["intrinsics"], (3, 3), "intrinsics", where)
    w2c = _matrix(obj["world_to_camera"], (4, 4), "world_to_camera", where)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[1, 0]) + abs(K[2, 0]) + abs(K[2, 1]) > 0 or K[2, 2] != 1:
        raise InputError(f"{where}: 'intrinsics' must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
    if not np.allclose(w2c[3], [0, 0, 0, 1]):
        raise InputError(f"{where}: 'world_to_camera' last row must be [0, 0, 0, 1]")
    sizes = []
    for key in ("width", "height"):
        v = obj[key]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16384:
            raise InputError(f"{where}: {key!r} must be an integer in 1..16384, found {v!r}")
        sizes.append(v)
    name = obj.get("name", default_name)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\"):
        raise InputError(f"{where}: 'name' must be a plain file-name string, found {name!r}")
    return CameraSpec(name=name, intrinsics=K, world_to_camera=w2c, width=sizes[0], height=sizes[1])


def load_cameras(path: str | os.PathLike) -> list[CameraSpec]:
    """The camera(s) of a JSON file: one object, a list, or ``{"cameras": [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such camera file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and "cameras" in data:
        data = data["cameras"]
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InputError(f"{path}: no cameras")
    digits = max(3, int(math.log10(len(items))) + 1)
    cameras = [parse_camera(obj, f"{path} camera {i}", f"view{i:0{digits}d}") for i, obj in enumerate(items)]
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: camera names must be unique, found {names}")
    return cameras
