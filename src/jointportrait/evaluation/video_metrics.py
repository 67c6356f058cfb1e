"""Video metrics of Table 3 (paper Sec. 5.5): per-frame L1/SSIM/LPIPS, FVD and identity similarity.

* Per-frame metrics: :func:`~jointportrait.evaluation.image_metrics.image_metrics`
  on each frame pair (frame ``i`` of the prediction against frame ``i`` of the
  ground truth), mean over the frames of a clip, then mean over clips.
* FVD: Frechet distance (:mod:`~jointportrait.evaluation.fid`) between the I3D
  features of windows of the predicted and of the ground-truth clips, computed
  over the whole set. Each clip is cut into non-overlapping windows of 16
  frames (:func:`clip_windows`: frames ``[0, 16)``, ``[16, 32)``, ...; a rest
  shorter than a window is left out and counted); one feature per window.
  The Gaussian fit needs enough windows: the unbiased covariance of ``N``
  features is a sum of ``N`` outer products about their mean, so its rank is
  at most ``N - 1``, and it is singular (some feature directions get zero
  variance, which biases FVD) whenever ``N - 1 < D``. :func:`fvd_over_windows`
  therefore warns when ``N < D + 1`` windows, i.e. fewer than 401 for the
  400-d I3D logits (the published FVD protocol uses thousands), and cannot
  compute FVD at all below 2 windows per side.
* Identity similarity: cosine similarity of face embeddings between each
  predicted frame and its identity reference (the reference image when one is
  given, else the ground-truth frame), mean over frames, then over clips; with
  ArcFace (ONNX) and/or dlib's 128-d descriptor, faces aligned by landmarks
  (:mod:`jointportrait.evaluation.identity`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from jointportrait.evaluation.fid import frechet_distance_from_features
from jointportrait.evaluation.identity import cosine_similarity
from jointportrait.evaluation.image_metrics import image_metrics

logger = logging.getLogger(__name__)

FVD_WINDOW = 16


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


def clip_windows(frames: torch.Tensor, window: int = FVD_WINDOW) -> torch.Tensor:
    """Non-overlapping windows ``(N, 3, window, H, W)`` (I3D's clip layout) of frames ``(T, 3, H, W)``,
    ``N = T // window``; the last ``T % window`` frames are left out."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    n = frames.shape[0] // window
    x = frames[: n * window].reshape(n, window, *frames.shape[1:])  # (N, window, 3, H, W)
    return x.permute(0, 2, 1, 3, 4)  # (N, 3, window, H, W)


@dataclass(frozen=True)
class FVDResult:
    """FVD over ``windows`` windows per side of ``feature_dim``-d features; ``warning`` says when the
    covariance is singular (module docstring), else None."""

    value: float
    windows: int
    feature_dim: int
    warning: str | None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {"fvd": self.value, "windows": self.windows, "feature_dim": self.feature_dim, "warning": self.warning}


def covariance_warning(windows: int, feature_dim: int) -> str | None:
    """Why ``windows`` samples of ``feature_dim``-d features give a singular covariance, or None."""
    if windows >= feature_dim + 1:
        return None
    return (f"FVD over {windows} windows of {feature_dim}-d features: the covariance has rank <= {windows - 1} < "
            f"{feature_dim} (singular), which biases FVD upward; a full-rank covariance needs >= {feature_dim + 1} "
            "windows")


def fvd_over_windows(pred_features: np.ndarray, gt_features: np.ndarray) -> FVDResult:
    """FVD of window features ``(N, D)`` (predicted) and ``(M, D)`` (ground truth); logs a warning when
    ``min(N, M) < D + 1`` (module docstring)."""
    n, d = min(pred_features.shape[0], gt_features.shape[0]), pred_features.shape[1]
    if n < 2:
        raise ValueError(f"FVD needs at least 2 windows per side, got {n}")
    warning = covariance_warning(n, d)
    if warning is not None:
        logger.warning(warning)
    return FVDResult(fvd(pred_features, gt_features), n, d, warning)
