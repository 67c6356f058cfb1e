"""Test-time ensembling of relative depth maps (paper Sec. 5.3, following Marigold, Ke et al. 2024).

Each sampled depth is affine-invariant, so members can differ by a scale and a
shift. The merge alternates two steps a few times: align every member to the
current per-pixel median by least squares (:func:`jointportrait.alignment.align_scale_shift`),
then take the per-pixel median of the aligned members. The spread of the
aligned members (median absolute deviation) is the uncertainty map. The result
is mapped back to the [0, 1] relative-depth convention (0 = near).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointportrait.alignment import align_scale_shift


@dataclass
class EnsembleResult:
    depth: np.ndarray  # (H, W) float32 in [0, 1]
    uncertainty: np.ndarray  # (H, W) float32, median absolute deviation in the depth's units
    scales: np.ndarray  # (N,) per-member scale of the last alignment
    shifts: np.ndarray  # (N,)


def ensemble_depths(depths: np.ndarray, mask: np.ndarray | None = None, iterations: int = 3) -> EnsembleResult:
    """Merge ``depths`` ``(N, H, W)`` in [0, 1] into one map by aligned per-pixel median.

    Alignment is fitted over ``mask`` (``(H, W)`` bool, default: all pixels). The merged map
    keeps the mean and spread (over ``mask``) of the members' plain median, so it stays in
    the members' [0, 1] frame, and is clipped to [0, 1]; identical members return that map.
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
    return EnsembleResult(np.clip(merged, 0.0, 1.0).astype(np.float32), uncertainty.astype(np.float32),
                          scales, shifts)


def _match_moments(x: np.ndarray, like: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` affinely mapped to the mean and standard deviation of ``like`` over ``mask``."""
    sx, sl = x[mask].std(), like[mask].std()
    if sx == 0 or not mask.any():
        return x
    return (x - x[mask].mean()) * (sl / sx) + like[mask].mean()
