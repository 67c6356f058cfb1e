"""The commands' input files: discovery, companion files matched by name, and user depth maps and masks.

A command takes a file or a folder (:func:`collect_files`); files that go with each input
(a reference, a depth, a mask) are one file for all or a folder matched by the input's stem
(:func:`companion_file`). User depth and masks are checked here, once, with one-line errors
that name the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, MissingPathError
from jointportrait.io import IMAGE_SUFFIXES, load_depth, load_image


def collect_files(path: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES, what: str = "image") -> list[Path]:
    """A file, or the matching files of a folder (sorted); an error when there are none."""
    suffixes = tuple(s.lower() for s in suffixes)
    if not path.exists():
        raise MissingPathError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{path}: folder holds no {what} files ({', '.join(suffixes)})")
    return files


def companion_file(path: Path | None, stem: str, what: str, suffixes: Iterable[str],
                   extra_stems: Iterable[str] = ()) -> Path | None:
    """The file that goes with input ``stem``: ``path`` itself if a file, else ``path/<stem>.<suffix>``.

    ``extra_stems`` are further names tried in a folder (e.g. ``<stem>_depth`` as written by
    ``estimate-depth``). None when ``path`` is None.
    """
    if path is None:
        return None
    if not path.exists():
        raise MissingPathError(f"{path}: no such file or folder ({what})")
    if path.is_file():
        return path
    for name in (stem, *extra_stems):
        for suffix in suffixes:
            candidate = path / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    raise MissingPathError(f"{path}: no {what} for {stem!r} (looked for {stem}.* and {', '.join(extra_stems) or '-'})")


def load_user_depth(path: Path, size: tuple[int, int] | None = None, allow_nan: bool = False) -> np.ndarray:
    """A depth map from a user file; NaN/inf values (unless ``allow_nan``: the face-crop commands check the
    crop only) or a size other than ``size`` (H, W) are errors."""
    depth = load_depth(path)
    if not allow_nan and not np.isfinite(depth).all():
        raise InputError(f"{path}: depth contains NaN or infinite values; mark missing depth with 0 instead")
    if size is not None and depth.shape != tuple(size):
        raise InputError(f"{path}: depth is {depth.shape[1]}x{depth.shape[0]}, expected {size[1]}x{size[0]} "
                         "(the image's size)")
    return depth


def load_user_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A binary mask (white = True) of exactly ``size`` (H, W) from an image file."""
    mask = np.asarray(load_image(path).convert("L")) > 127
    if mask.shape != tuple(size):
        raise InputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, expected {size[1]}x{size[0]} "
                         "(the image's size)")
    return mask
