"""The commands' output files: names, the no-overwrite check before any work, and the writers.

Every writer refuses to replace an existing file unless ``overwrite`` (the ``--overwrite`` flag);
:func:`check_outputs_free` runs before a command computes anything, so a refused run leaves
no half-written outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from jointportrait.io import check_writable, colorize_depth, save_depth_npy, save_depth_png16


def check_outputs_free(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse before any work if an output exists (so nothing is half-overwritten)."""
    for p in paths:
        check_writable(p, overwrite)


def depth_output_paths(out: Path, stem: str) -> dict[str, Path]:
    """The files :func:`save_depth_outputs` writes for ``stem``."""
    return {
        "npy": out / f"{stem}_depth.npy",
        "png16": out / f"{stem}_depth.png",
        "color": out / f"{stem}_depth_color.png",
    }


def save_depth_outputs(out: Path, stem: str, depth: np.ndarray, overwrite: bool) -> dict[str, Path]:
    """Relative depth (H, W) in [0, 1] -> float32 .npy, 16-bit PNG, colour-mapped PNG."""
    paths = depth_output_paths(out, stem)
    save_depth_npy(paths["npy"], depth, overwrite=overwrite)
    save_depth_png16(paths["png16"], depth, overwrite=overwrite)
    Image.fromarray(colorize_depth(depth, lo=0.0, hi=1.0)).save(check_writable(paths["color"], overwrite))
    return paths


def save_normals_image(path: Path, normals: np.ndarray, overwrite: bool) -> Path:
    """Unit normals (H, W, 3) in the viewer frame -> an RGB normal map PNG."""
    from jointportrait.geometry.normals import normals_to_image

    Image.fromarray(normals_to_image(normals)).save(check_writable(path, overwrite))
    return path
