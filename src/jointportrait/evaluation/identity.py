"""Identity similarity with a face-recognition network (ArcFace score, Table 3 of the paper, Sec. 5.5).

Two backbones, one interface (``encoder(images (B, 3, H, W) in [0, 1]) -> (B, D)``):

* :class:`IdentityEncoder`: an ONNX model run with onnxruntime (optional
  dependency: ``pip install onnxruntime``), for example insightface's ArcFace
  ``w600k_r50.onnx`` from a local file. Input: RGB, ``(255 x - 127.5) / 127.5``
  at the model's input size (read from the ONNX graph, 112 x 112 for ArcFace).
* :class:`DescriptorEncoder`: dlib's 128-d face descriptor
  (:class:`jointportrait.faces.FaceDescriptor`), shipped with the ``faces``
  extra, so identity similarity needs no weights from the user.

Faces are aligned by their 68 landmarks before embedding (:class:`FaceAligner`,
the ``faces`` extra): to the ArcFace five-point template for the ONNX model,
to dlib's chip for the descriptor. Where the detector finds no face (a
generated frame gone wrong), the landmarks are predicted inside the box where
the crop rule of :mod:`jointportrait.faces.crop` puts the face of a portrait
crop, and the frame is counted in :attr:`FaceAligner.fallbacks`. Without the
extra the ONNX model sees the whole image resized (the earlier behaviour).

Identity similarity of two images = cosine similarity of their embeddings::

    sim(a, b) = a . b / (|a| |b|)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jointportrait.errors import InputError, MissingPathError
from jointportrait.faces.align import align_to_template

# where a face of a crop by the crop rule lies: the detector box is about half the crop's side, a bit high
FALLBACK_BOX = (0.25, 0.2, 0.75, 0.7)  # x0, y0, x1, y1 as fractions of the width / height


def cosine_similarity(a: Any, b: Any) -> np.ndarray:
    """Row-wise cosine similarity of embeddings ``(N, D)`` and ``(N, D)`` (or ``(D,)``) -> ``(N,)``."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"embeddings differ in size: {a.shape[-1]} vs {b.shape[-1]}")
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return np.sum(a * b, axis=-1) / np.maximum(na * nb, 1e-12)


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """Images ``(B, 3, H, W)`` in [0, 1] -> ``B`` arrays ``(H, W, 3)`` uint8."""
    arr = (images.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return list(arr)


class FaceAligner:
    """68 landmarks of the largest face of an image (the ``faces`` extra), with a fallback box."""

    def __init__(self, detector=None) -> None:
        from jointportrait.faces import FaceDetector

        self.detector = detector or FaceDetector()
        self.fallbacks = 0
        self.images = 0

    def landmarks(self, image: np.ndarray) -> np.ndarray:
        """Landmarks ``(68, 2)`` of the largest face of ``image`` ``(H, W, 3)`` uint8."""
        self.images += 1
        faces = self.detector.detect(image)
        if faces:
            return faces[0].landmarks
        self.fallbacks += 1
        h, w = image.shape[:2]
        box = (FALLBACK_BOX[0] * w, FALLBACK_BOX[1] * h, FALLBACK_BOX[2] * w, FALLBACK_BOX[3] * h)
        return self.detector.landmarks(image, box)


class IdentityEncoder:
    """Face embeddings ``(B, D)`` for images ``(B, 3, H, W)`` in [0, 1] from a local ONNX model; faces are
    aligned to the ArcFace template when an ``aligner`` is given."""

    name = "arcface-onnx"

    def __init__(self, onnx_path: str | Path, providers: list[str] | None = None,
                 aligner: FaceAligner | None = None) -> None:
        path = Path(onnx_path)
        if not path.is_file():
            raise MissingPathError(f"{path}: no such file; expected a face-recognition ONNX model (e.g. ArcFace)")
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("identity similarity needs onnxruntime (pip install onnxruntime)") from None
        try:
            self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise InputError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if len(shape) != 4 or not all(isinstance(s, int) for s in shape[2:]):
            raise InputError(f"{path}: expected an image input (N, 3, H, W) with fixed H, W; got {shape}")
        self.input_size = (int(shape[2]), int(shape[3]))
        if aligner is not None and shape[2] != shape[3]:
            raise InputError(f"{path}: landmark alignment needs a square input, the model takes {shape[2:]}")
        self.aligner = aligner

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The network input ``(B, 3, h, w)`` in [0, 1]: aligned faces, or the images resized."""
        if self.aligner is None:
            return F.interpolate(images.float(), size=self.input_size, mode="bilinear", align_corners=False,
                                 antialias=True)
        size = self.input_size[0]
        crops = [align_to_template(im, self.aligner.landmarks(im), size=size) for im in to_uint8(images)]
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = (self.prepare(images) * 255.0 - 127.5) / 127.5  # (B, 3, h, w)
        return np.asarray(self.session.run(None, {self.input_name: x.cpu().numpy().astype(np.float32)})[0])


class DescriptorEncoder:
    """dlib's 128-d descriptors ``(B, 128)`` of the landmark-aligned face in each image ``(B, 3, H, W)``."""

    name = "dlib-descriptor"

    def __init__(self, aligner: FaceAligner | None = None) -> None:
        from jointportrait.faces import FaceDescriptor

        self.aligner = aligner or FaceAligner()
        self.descriptor = FaceDescriptor()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return np.stack([self.descriptor(im, self.aligner.landmarks(im)) for im in to_uint8(images)])
