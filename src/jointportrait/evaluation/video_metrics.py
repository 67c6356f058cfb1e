"""Video metrics of Table 3 (paper Sec. 5.5): per-frame L1/SSIM/LPIPS, FVD and identity similarity.

* Per-frame metrics: :func:`~jointportrait.evaluation.image_metrics.image_metrics`
  on each frame pair (frame ``i`` of the prediction against frame ``i`` of the
  ground truth), mean over the frames of a clip, then mean over clips.
* FVD: Frechet distance (:mod:`~jointportrait.evaluation.fid`) between the I3D
  features of the predicted and of the ground-truth clips (one feature per
  clip), computed over the whole set.
* Identity similarity: cosine similarity of face embeddings between each
  predicted frame and its identity reference (the reference image when one is
  given, else the ground-truth frame), mean over frames, then over clips; with
  ArcFace (ONNX) and/or dlib's 128-d descriptor, faces aligned by landmarks
  (:mod:`jointportrait.evaluation.identity`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from jointportrait.evaluation.fid import frechet_distance_from_features
from jointportrait.evaluation.identity import cosine_similarity
from jointportrait.evaluation.image_metrics import image_metrics


def clip_frame_metrics(
    pred: torch.Tensor, gt: torch.Tensor, lpips_model: torch.nn.Module | None = None
) -> dict[str, float]:
    """Mean per-frame ``l1``, ``ssim`` (and ``lpips``) of frames ``(T, 3, H, W)`` in [0, 1]."""
    if pred.shape != gt.shape:
        raise ValueError(f"clips differ in shape: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    rows = [image_metrics(p[None], g[None], lpips_model) for p, g in zip(pred, gt)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def clip_identity_similarity(encoder: Callable[[torch.Tensor], np.ndarray], pred: torch.Tensor,
                             reference: torch.Tensor) -> float:
    """Mean cosine similarity between frames ``(T, 3, H, W)`` and ``reference`` (one image or one per frame)."""
    emb = encoder(pred)  # (T, D)
    ref = encoder(reference)  # (1 or T, D)
    return float(np.mean(cosine_similarity(emb, np.broadcast_to(ref, emb.shape))))


def fvd(pred_features: np.ndarray, gt_features: np.ndarray) -> float:
    """FVD from I3D features of the predicted and ground-truth clips, each ``(N, D)``."""
    return frechet_distance_from_features(pred_features, gt_features)
