"""Identity similarity with a face-recognition network (ArcFace score, Table 3 of the paper, Sec. 5.5).

The embedding network is an ONNX model run with onnxruntime (optional
dependency: ``pip install onnxruntime``), for example insightface's ArcFace
``w600k_r50.onnx`` from a local file. Faces are the portrait crops themselves
(no detector here): each image is resized to the model's input size (read from
the ONNX graph, 112x112 for ArcFace), RGB, ``(255 x - 127.5) / 127.5``.

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


def cosine_similarity(a: Any, b: Any) -> np.ndarray:
    """Row-wise cosine similarity of embeddings ``(N, D)`` and ``(N, D)`` (or ``(D,)``) -> ``(N,)``."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"embeddings differ in size: {a.shape[-1]} vs {b.shape[-1]}")
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return np.sum(a * b, axis=-1) / np.maximum(na * nb, 1e-12)


class IdentityEncoder:
    """Face embeddings ``(B, D)`` for images ``(B, 3, H, W)`` in [0, 1] from a local ONNX model."""

    def __init__(self, onnx_path: str | Path, providers: list[str] | None = None) -> None:
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

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = F.interpolate(images.float(), size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        x = (x * 255.0 - 127.5) / 127.5  # (B, 3, h, w)
        return np.asarray(self.session.run(None, {self.input_name: x.cpu().numpy().astype(np.float32)})[0])
