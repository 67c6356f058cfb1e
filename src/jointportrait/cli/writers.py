"""The commands' output files: names, the no-overwrite check before any work, and the writers.

Every writer refuses to replace an existing file unless ``overwrite`` (the ``--overwrite`` flag)
and goes through :mod:`jointportrait.io` (a full disk removes the partial file and names it);
:func:`check_outputs_free` runs before a command computes anything, so a refused run leaves
no half-written outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jointportrait.io import check_writable, depth_output_paths, save_depth_outputs, save_image

__all__ = ["check_outputs_free", "depth_output_paths", "save_depth_outputs", "save_normals_image"]


def check_outputs_free(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse before any work if an output exists (so nothing is half-overwritten)."""
    for p in paths:
        check_writable(p, overwrite)


def save_normals_image(path: Path, normals: np.ndarray, overwrite: bool) -> Path:
    """Unit normals (H, W, 3) in the viewer frame -> an RGB normal map PNG."""
    from jointportrait.geometry.normals import normals_to_image

    return save_image(path, normals_to_image(normals), overwrite=overwrite)
