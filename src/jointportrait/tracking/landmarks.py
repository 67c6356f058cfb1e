"""68-point landmarks per frame, detected or read from a file (paper Sec. 5.1: the tracker's landmark loss).

Landmarks are pixels (x right, y down, pixel centres on integers) in the
Multi-PIE 68-point order that the face model's ``landmark_indices`` follow
(:mod:`jointportrait.faces.layout`). :func:`detect_clip_landmarks` finds them
with the built-in detector (the ``faces`` extra): every frame is searched, one
person is followed through the clip (:func:`jointportrait.faces.follow_face`)
and the track is smoothed (:func:`jointportrait.faces.smooth_landmarks`).
:func:`load_landmarks` reads any other detector's output: a ``.npy`` array
``(F, 68, 2)`` or a ``.json`` file holding ``{"frames": [[[x, y], ... 68], ...]}``
or the bare list. A frame whose points are all NaN (``null`` in JSON) has no
face: the tracker skips it. :func:`save_landmarks` writes both formats.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, MissingPathError
from jointportrait.faces.layout import JAW, LEFT_EYE, NUM_LANDMARKS, RIGHT_EYE, interocular_distance
from jointportrait.faces.selection import follow_face
from jointportrait.faces.smoothing import SmoothingConfig, smooth_landmarks

__all__ = ["JAW", "LEFT_EYE", "NUM_LANDMARKS", "RIGHT_EYE", "ClipLandmarks", "detect_clip_landmarks",
           "interocular_distance", "load_landmarks", "save_landmarks"]

logger = logging.getLogger(__name__)


@dataclass
class ClipLandmarks:
    """Landmarks of a clip: ``landmarks`` ``(F, 68, 2)`` float32 (NaN where no face), ``found`` ``(F,)`` bool;
    for detections also the boxes ``(F, 4)`` (NaN where none), scores ``(F,)`` and the face count per frame."""

    landmarks: np.ndarray
    found: np.ndarray
    boxes: np.ndarray | None = None
    scores: np.ndarray | None = None
    face_counts: list[int] = field(default_factory=list)

    @property
    def missing(self) -> list[int]:
        """Frames without a face."""
        return np.flatnonzero(~self.found).tolist()


BOX_SAMPLES = 16  # predictions averaged per face by default (box_averaged_landmarks)
BOX_JITTER = 0.05  # their boxes' standard deviation of shift and growth, in box sizes


def box_averaged_landmarks(detector, image: np.ndarray, box: tuple[float, float, float, float], samples: int,
                           jitter: float = BOX_JITTER, seed: int = 0) -> np.ndarray:
    """The mean ``(68, 2)`` of the detector's 68-point predictions from ``samples`` boxes around ``box``
    ``(x0, y0, x1, y1)``, each shifted by ``N(0, jitter)`` box sizes in x and y and grown by ``N(0, jitter)``
    box sizes on every side (reproducible: numpy generator seeded with ``seed``).

    dlib's predictor is a cascade of regression trees started from its mean shape placed in the box; it does
    not converge to one answer, and on faces unlike its training photos its points move by several pixels
    with the box. Averaging over boxes cancels that part: on the real-scan benchmark (docs/TRACKING.md) the
    points' mean distance to the face model's landmark vertices drops from 6.2 to 5.9 px and the tracked
    depth's aligned AbsRel of the landmark stages from 0.0164 to 0.0142 (12 frames, 256 px; 0.0163 to 0.0125
    at the test's 4 frames, 160 px); on the hand-labelled astronaut photo, where dlib is accurate, the error
    stays 0.038 of the outer-eye distance.
    """
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    shift = np.random.default_rng(seed).normal(0.0, jitter, (samples, 3)) * size  # (S, 3): dx, dy, growth
    points = [detector.landmarks(image, (x0 + dx - g, y0 + dy - g, x1 + dx + g, y1 + dy + g)) for dx, dy, g in shift]
    return np.mean(points, axis=0).astype(np.float32)


def detect_clip_landmarks(frames: np.ndarray, fps: float, detector, face_index: int = 0,
                          smoothing: SmoothingConfig | None = SmoothingConfig(),
                          progress: Callable[[int], object] | None = None,
                          box_samples: int = BOX_SAMPLES) -> ClipLandmarks:
    """Detect, follow and smooth the landmarks of one face through frames ``(F, H, W, 3)`` uint8.

    ``detector``: a :class:`jointportrait.faces.FaceDetector`. ``smoothing`` None keeps the raw detections.
    ``progress`` is called with 1 after each frame. ``box_samples`` > 1: the followed face's points are the
    mean of that many predictions from jittered boxes (:func:`box_averaged_landmarks`; 0 or 1: one prediction).
    """
    detections = []
    for frame in frames:
        detections.append(detector.detect(frame))
        if progress is not None:
            progress(1)
    chosen = follow_face(detections, face_index)
    num = len(frames)
    landmarks = np.full((num, NUM_LANDMARKS, 2), np.nan, np.float32)
    boxes = np.full((num, 4), np.nan, np.float32)
    scores = np.full(num, np.nan, np.float32)
    for f, face in enumerate(chosen):
        if face is not None:
            landmarks[f], boxes[f], scores[f] = face.landmarks, face.box, face.score
            if box_samples > 1:
                landmarks[f] = box_averaged_landmarks(detector, frames[f], face.box, box_samples, seed=f)
    found = np.array([face is not None for face in chosen], bool)
    if smoothing is not None and found.any():
        landmarks = np.where(found[:, None, None], smooth_landmarks(landmarks, fps, found, smoothing), np.nan)
    return ClipLandmarks(landmarks.astype(np.float32), found, boxes, scores, [len(d) for d in detections])


def load_landmarks(path: str | os.PathLike, num_frames: int | None = None) -> np.ndarray:
    """Read landmarks ``(F, 68, 2)`` float32; checks the layout, the frame count and finiteness (a frame
    may be all NaN: no face there)."""
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
            if not isinstance(data, list):
                raise InputError(f"{path}: expected a list of frames or an object with key 'frames'")
            nan = np.full((NUM_LANDMARKS, 2), np.nan)
            data = np.asarray([nan if frame is None else frame for frame in data], dtype=np.float64)
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
    finite = np.isfinite(data).all(axis=(1, 2))
    absent = np.isnan(data).all(axis=(1, 2))
    bad = ~finite & ~absent
    if bad.any():
        raise InputError(f"{path}: non-finite landmarks in frame {int(np.argmax(bad))} (a frame without a face "
                         "must be all NaN)")
    return data.astype(np.float32)


def save_landmarks(path: str | os.PathLike, clip: ClipLandmarks, overwrite: bool = False,
                   **info: object) -> Path:
    """Write ``clip`` as ``.npy`` (``(F, 68, 2)`` float32, NaN = no face) or ``.json`` (``frames`` with
    ``null`` for no face, plus ``found``, ``boxes``, ``scores`` and ``info``)."""
    from jointportrait.io import check_writable

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".json"):
        raise InputError(f"{path}: landmarks are written as .npy or .json, got '{suffix}'")
    path = check_writable(path, overwrite)
    if suffix == ".npy":
        np.save(path, clip.landmarks.astype(np.float32))
        return path

    def rows(array: np.ndarray | None) -> list | None:
        if array is None:
            return None
        return [None if not ok else np.round(a.astype(np.float64), 3).tolist() for a, ok in zip(array, clip.found)]

    record = {"frames": rows(clip.landmarks), "found": clip.found.tolist(), "boxes": rows(clip.boxes),
              "scores": None if clip.scores is None else [None if not ok else round(float(s), 4)
                                                           for s, ok in zip(clip.scores, clip.found)],
              "face_counts": clip.face_counts, **info}
    path.write_text(json.dumps(record) + "\n")
    return path
