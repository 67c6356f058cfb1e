"""Which detected face to use: the largest, the ``face_index``-th, and the same person through a video.

Faces are ranked by box area, largest first, so ``face_index`` 0 is the
largest face of an image. In a video the face is chosen once, in the first
frame where the detector finds at least ``face_index + 1`` faces, and then
followed: in every later frame the detection whose centre is nearest to the
last chosen one is taken, if it lies within one face size of it per frame
elapsed since (a face does not cross its own width in one frame at video
rates); otherwise the frame has no face of that person.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from jointportrait.errors import InputError
from jointportrait.faces.detector import DetectedFace

logger = logging.getLogger(__name__)


class NoFaceError(InputError):
    """No face (or not as many as ``face_index`` asks for) was found in an image."""


def select_face(faces: Sequence[DetectedFace], face_index: int = 0, where: str = "image") -> DetectedFace:
    """The ``face_index``-th largest face; a one-line error naming ``where`` when there is none."""
    if face_index < 0:
        raise InputError(f"face index must be >= 0, got {face_index}")
    if not faces:
        raise NoFaceError(f"{where}: no face found")
    if face_index >= len(faces):
        raise NoFaceError(f"{where}: face index {face_index} asked for, but only {len(faces)} face(s) found")
    if len(faces) > 1:
        logger.info("%s: %d faces (sizes %s px); using index %d", where, len(faces),
                    ", ".join(f"{f.size:.0f}" for f in faces), face_index)
    return faces[face_index]


def follow_face(detections: Sequence[Sequence[DetectedFace]], face_index: int = 0) -> list[DetectedFace | None]:
    """One face per frame (None where the followed face is not found), from each frame's detections."""
    if face_index < 0:
        raise InputError(f"face index must be >= 0, got {face_index}")
    chosen: list[DetectedFace | None] = []
    last: DetectedFace | None = None
    gap = 0
    for faces in detections:
        gap += 1
        pick = None
        if last is None:
            if len(faces) > face_index:
                pick = faces[face_index]
        elif faces:
            dist = [float(np.linalg.norm(f.centre - last.centre)) for f in faces]
            best = int(np.argmin(dist))
            if dist[best] <= gap * last.size:
                pick = faces[best]
        chosen.append(pick)
        if pick is not None:
            last, gap = pick, 0
    return chosen

