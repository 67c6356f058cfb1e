"""68-point landmarks per frame, read from a file (paper Sec. 5.1: the tracker's landmark loss).

Any detector can feed the tracker: landmarks come as pixels (x right, y down,
pixel centres on integers) in the Multi-PIE 68-point order that the face
model's ``landmark_indices`` follow, either a ``.npy`` array ``(F, 68, 2)`` or
a ``.json`` file holding ``{"frames": [[[x, y], ... 68], ...]}`` or the bare
list. No detector weights are shipped or downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, MissingPathError

NUM_LANDMARKS = 68
# Multi-PIE groups: jaw contour, brows, nose, eyes, mouth (index ranges, end exclusive).
JAW = slice(0, 17)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)


def load_landmarks(path: str | os.PathLike, num_frames: int | None = None) -> np.ndarray:
    """Read landmarks ``(F, 68, 2)`` float32; checks the layout, the frame count and finiteness."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: landmarks file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".json":
            obj = json.loads(path.read_text())
            data = obj.get("frames") if isinstance(obj, dict) else obj
            if data is None:
                raise InputError(f"{path}: expected a list of frames or an object with key 'frames'")
            data = np.asarray(data, dtype=np.float64)
        else:
            raise InputError(f"{path}: landmarks must be a .npy or .json file, got '{suffix}'")
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable landmarks file ({exc})") from None
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[1:] != (NUM_LANDMARKS, 2):
        raise InputError(f"{path}: landmarks must have shape (frames, 68, 2), found {tuple(data.shape)}")
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{path}: landmarks must be numbers, found dtype {data.dtype}")
    if num_frames is not None and data.shape[0] != num_frames:
        raise InputError(f"{path}: {data.shape[0]} frames of landmarks for a video of {num_frames} frames")
    bad = ~np.isfinite(data).all(axis=(1, 2))
    if bad.any():
        raise InputError(f"{path}: non-finite landmarks in frame {int(np.argmax(bad))}")
    return data.astype(np.float32)


def interocular_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres ``(F,)`` of landmarks ``(F, 68, 2)``: the face's scale in pixels."""
    return np.linalg.norm(landmarks[:, RIGHT_EYE].mean(1) - landmarks[:, LEFT_EYE].mean(1), axis=-1)
