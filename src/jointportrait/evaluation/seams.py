"""The seam score of a video made clip by clip (paper Sec. 5.5, supplementary 7.1: motion frames "ensure the
coherence among different clips").

A video of ``N`` frames generated in clips starting at frames ``s_0 = 0 < s_1 < ...`` has
``N - 1`` frame-to-frame changes ``c_i = mean |x_{i+1} - x_i|`` (mean absolute difference
over pixels and channels of frames ``i`` and ``i + 1``). The pairs ``(s_k - 1, s_k)``,
``k >= 1``, straddle a clip boundary; every other pair lies inside a clip. The seam score is

    seam = mean_{boundary pairs} c_i / mean_{inner pairs} c_i

1 means a boundary looks like any other step of the video (seamless); clips that do not
know each other jump at their boundaries and score well above 1. The score is undefined
(NaN) without a boundary, without an inner pair, or when nothing changes inside the clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeamScore:
    """``score`` = ``boundary_change / inner_change``; ``boundaries``: how many clip boundaries were measured."""

    score: float
    boundary_change: float
    inner_change: float
    boundaries: int

    def as_dict(self) -> dict[str, float | int]:
        return {"seam_score": self.score, "boundary_change": self.boundary_change,
                "inner_change": self.inner_change, "boundaries": self.boundaries}


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """``c_i = mean |x_{i+1} - x_i|`` of frames ``(N, ...)`` (any layout, e.g. ``(N, H, W, 3)`` in [0, 1]):
    ``(N - 1,)`` float64."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"need at least two frames, got shape {x.shape}")
    return np.abs(np.diff(x, axis=0)).reshape(x.shape[0] - 1, -1).mean(axis=1)


def seam_score(frames: np.ndarray, clip_starts: Sequence[int]) -> SeamScore:
    """The seam score of ``frames`` ``(N, ...)`` generated in clips starting at ``clip_starts`` (0 first)."""
    changes = frame_changes(frames)
    n = changes.shape[0] + 1
    starts = sorted(set(int(s) for s in clip_starts))
    if not starts or starts[0] != 0 or starts[-1] >= n:
        raise ValueError(f"clip starts must begin at 0 and lie inside the {n} frames, got {list(clip_starts)}")
    boundary = np.zeros(n - 1, dtype=bool)
    boundary[[s - 1 for s in starts[1:]]] = True
    b_change = float(changes[boundary].mean()) if boundary.any() else float("nan")
    i_change = float(changes[~boundary].mean()) if (~boundary).any() else float("nan")
    score = b_change / i_change if np.isfinite(b_change) and np.isfinite(i_change) and i_change > 0 else float("nan")
    return SeamScore(score, b_change, i_change, int(boundary.sum()))
