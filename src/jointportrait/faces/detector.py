"""Face detection and 68-point landmarks on a photo (paper Sec. 5.1: the tracker's landmarks; Sec. 5.3-5.4:
face crops of in-the-wild photos).

Backend: dlib (the ``faces`` extra). Faces are found by dlib's HOG + linear
SVM frontal detector (about 0.1-0.2 s at 512 px on one core; it misses
profile views) or, with ``method="cnn"``, by its max-margin CNN detector
(finds turned faces, 2-4 s per image on a CPU). The 68 points come from
dlib's ensemble-of-regression-trees shape predictor (Kazemi & Sullivan 2014,
about 3 ms a face), trained on iBUG 300-W (see docs/TRACKING.md for its
licence). Landmarks are pixels in the Multi-PIE order of
:mod:`jointportrait.faces.layout`, pixel centres on integers, and, like every
dlib shape, whole pixels.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from jointportrait.errors import InputError
from jointportrait.faces.backend import dlib_module, model_file
from jointportrait.faces.layout import NUM_LANDMARKS

logger = logging.getLogger(__name__)

METHODS = ("hog", "cnn")
MIN_DETECTION_SIZE = 320  # images are upsampled (x2 steps, at most twice) until their longer side reaches this
MAX_UPSAMPLE = 2


@dataclass(frozen=True)
class DetectedFace:
    """One face: ``box`` ``(x0, y0, x1, y1)`` pixels (x1, y1 exclusive), ``landmarks`` ``(68, 2)`` float32
    pixels, ``score`` the detector's confidence (HOG: SVM margin, > 0; CNN: > 0)."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)

    @property
    def centre(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2])

    @property
    def size(self) -> float:
        """The box's side (mean of width and height) in pixels."""
        x0, y0, x1, y1 = self.box
        return 0.5 * ((x1 - x0) + (y1 - y0))


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array, C-contiguous (what dlib reads)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise InputError(f"{name}: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)


def auto_upsample(height: int, width: int) -> int:
    """Doublings of the image before HOG detection: its smallest window is 80 px, so a small frame (a
    176 x 144 video) is doubled until its longer side reaches :data:`MIN_DETECTION_SIZE`."""
    longest = max(height, width)
    if longest >= MIN_DETECTION_SIZE:
        return 0
    return min(MAX_UPSAMPLE, math.ceil(math.log2(MIN_DETECTION_SIZE / longest)))


class FaceDetector:
    """Faces with 68 landmarks in RGB images; :meth:`detect` returns them largest first.

    ``method``: ``"hog"`` (fast, frontal) or ``"cnn"`` (slow, any pose).
    ``upsample``: doublings before detection (None: :func:`auto_upsample`).
    ``min_score``: detections with a lower score are dropped (HOG also fires
    on some non-faces, with small scores).
    """

    def __init__(self, method: str = "hog", upsample: int | None = None, min_score: float = 0.0) -> None:
        if method not in METHODS:
            raise InputError(f"face detector method must be one of {', '.join(METHODS)}, got {method!r}")
        if upsample is not None and not 0 <= upsample <= 4:
            raise InputError(f"face detector upsample must be in 0..4, got {upsample}")
        dlib = dlib_module()
        self.method, self.upsample, self.min_score = method, upsample, min_score
        if method == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(str(model_file("cnn_detector")))
        self._predictor = dlib.shape_predictor(str(model_file("landmarks68")))
        self._dlib = dlib

    def boxes(self, image: np.ndarray) -> list[tuple[object, float]]:
        """dlib rectangles and scores of the faces in ``image`` (after the score threshold)."""
        image = check_image(image)
        up = auto_upsample(*image.shape[:2]) if self.upsample is None else self.upsample
        if self.method == "hog":
            rects, scores, _ = self._detector.run(image, up, 0.0)
            found = list(zip(rects, scores))
        else:
            found = [(d.rect, d.confidence) for d in self._detector(image, up)]
        return [(r, float(s)) for r, s in found if s >= self.min_score]

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The 68 points ``(68, 2)`` float32 of the face in ``box`` ``(x0, y0, x1, y1)`` (any detector's box)."""
        image = check_image(image)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(image, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        assert points.shape == (NUM_LANDMARKS, 2)
        return points

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """All faces of an ``(H, W, 3)`` uint8 RGB image with their landmarks, sorted by box area (largest
        first, so index 0 is the largest face)."""
        image = check_image(image)
        faces = []
        for rect, score in self.boxes(image):
            box = (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
            faces.append(DetectedFace(box=box, landmarks=self.landmarks(image, box), score=score))
        faces.sort(key=lambda f: -f.area)
        logger.debug("%d face(s) found", len(faces))
        return faces
