"""Test-time ensembling of relative depth maps (paper Sec. 5.3, following Marigold, Ke et al. 2024).

Each sampled depth is affine-invariant, so members can differ by a scale and a
shift. The merge alternates two steps a few times: align every member to the
current per-pixel median by least squares (:func:`jointportrait.alignment.align_scale_shift`),
then take the per-pixel median of the aligned members. The spread of the
aligned members (median absolute deviation) is the uncertainty map. The result
is mapped back to the [0, 1] relative-depth convention (0 = near).

The fit runs over the foreground only. The model is trained with invalid pixels
(background, holes) on the far plane, depth 1 (DESIGN.md, "Depth as the model
sees it"), so a portrait's estimate is a face in front of a constant
background. Fitted over every pixel, that constant plane (often most of the
image) would pull each member's scale and shift towards matching the
background instead of the face. :func:`foreground_mask` recovers the model's
valid mask from the members: the pixels whose median lies in front of the far
plane (below :data:`FAR_PLANE_THRESHOLD`). Background pixels are not aligned:
they keep the members' plain median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointportrait.alignment import align_scale_shift

# A pixel whose median member depth is at or beyond this is far plane (background). The model's
# background target is exactly 1; valid depths reach 1 only in their top 2 % (the 98th-percentile clip),
# so the margin keeps VAE decoding noise of the background out of the fit at the price of the farthest
# few percent of the face, which carry the least shape.
FAR_PLANE_THRESHOLD = 0.95
# Below this many foreground pixels (fraction of the map, or 16 pixels) the fit falls back to all pixels.
MIN_FOREGROUND_FRACTION = 0.01
MIN_FOREGROUND_PIXELS = 16


def foreground_mask(depths: np.ndarray, threshold: float = FAR_PLANE_THRESHOLD) -> np.ndarray:
    """Pixels ``(H, W)`` bool where the per-pixel median of ``depths`` ``(N, H, W)`` (or one ``(H, W)`` map)
    in [0, 1] lies in front of the far plane (``< threshold``): the valid mask of the model's convention."""
    depths = np.asarray(depths, np.float32)
    median = np.median(depths, axis=0) if depths.ndim == 3 else depths
    return median < threshold


@dataclass
class EnsembleResult:
    depth: np.ndarray  # (H, W) float32 in [0, 1]
    uncertainty: np.ndarray  # (H, W) float32, median absolute deviation in the depth's units
    scales: np.ndarray  # (N,) per-member scale of the last alignment
    shifts: np.ndarray  # (N,)


def ensemble_depths(depths: np.ndarray, mask: np.ndarray | None = None, iterations: int = 3) -> EnsembleResult:
    """Merge ``depths`` ``(N, H, W)`` in [0, 1] into one map by aligned per-pixel median.

    Alignment is fitted over ``mask`` (``(H, W)`` bool, default: all pixels; depth estimation
    passes :func:`foreground_mask`). Inside ``mask`` the merged map keeps the mean and spread of
    the members' plain median, so it stays in the members' [0, 1] frame; outside it is the plain
    median (and the uncertainty the plain spread). The map is clipped to [0, 1]; identical members
    return that map. A ``mask`` with fewer than ``max(16, 1 %)`` pixels is replaced by all pixels.
    """
    if iterations < 1:
        raise ValueError(f"`iterations` must be >= 1, got {iterations}")
    depths = np.asarray(depths, np.float32)
    if depths.ndim != 3 or depths.shape[0] < 1:
        raise ValueError(f"`depths` must be (N, H, W) with N >= 1, got shape {depths.shape}")
    n = depths.shape[0]
    if n == 1:
        return EnsembleResult(depths[0].copy(), np.zeros(depths.shape[1:], np.float32), np.ones(1), np.zeros(1))
    valid = np.ones(depths.shape[1:], bool) if mask is None else np.asarray(mask, bool)
    if valid.shape != depths.shape[1:]:
        raise ValueError(f"`mask` must be {depths.shape[1:]}, got shape {valid.shape}")
    if valid.sum() < max(MIN_FOREGROUND_PIXELS, MIN_FOREGROUND_FRACTION * valid.size):
        valid = np.ones_like(valid)
    frame = np.median(depths, axis=0)  # (H, W): fixes the output's scale and shift
    merged, aligned = frame, depths.copy()
    scales, shifts = np.ones(n), np.zeros(n)
    for _ in range(iterations):
        for i in range(n):
            aligned[i], scales[i], shifts[i] = align_scale_shift(depths[i], merged, valid)
        # least squares against a noisy reference shrinks the scale a little; re-anchoring the
        # median to the first frame's mean and spread stops the ensemble from contracting
        median = np.median(aligned, axis=0)  # (H, W)
        merged = _match_moments(median, frame, valid)
    uncertainty = np.median(np.abs(aligned - median[None]), axis=0)
    # background: not aligned (the fit says nothing about it), the members' plain median and spread
    merged = np.where(valid, merged, frame)
    uncertainty = np.where(valid, uncertainty, np.median(np.abs(depths - frame[None]), axis=0))
    return EnsembleResult(np.clip(merged, 0.0, 1.0).astype(np.float32), uncertainty.astype(np.float32),
                          scales, shifts)


def _match_moments(x: np.ndarray, like: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` affinely mapped to the mean and standard deviation of ``like`` over ``mask``."""
    sx, sl = x[mask].std(), like[mask].std()
    if sx == 0 or not mask.any():
        return x
    return (x - x[mask].mean()) * (sl / sx) + like[mask].mean()
