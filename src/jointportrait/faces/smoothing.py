"""Temporal smoothing of 68-point landmark tracks (paper Sec. 5.1: landmarks of in-the-wild video).

Per-frame detections jitter by a pixel or two; the tracker would copy that
jitter into the pseudo ground-truth depth. The filter is the One Euro filter
(Casiez, Roussel & Vogel, CHI 2012), the usual choice for landmark and
pointer tracks: an exponential low-pass whose cutoff rises with the speed of
the point,

    fc = min_cutoff + beta * |dx/dt|,   alpha = 1 / (1 + fps / (2 pi fc)),
    x_hat[t] = alpha x[t] + (1 - alpha) x_hat[t - 1],

so a still face is smoothed strongly and a fast one (a mouth opening, a head
turn) keeps its motion. Because whole clips are processed offline, the filter
runs forwards and backwards and the two passes are averaged: the lag of one
pass cancels the opposite lag of the other (exactly for a point moving at
constant speed), so smoothing does not shift expressions in time.
Coordinates are divided by the clip's median inter-ocular distance first, so
``beta`` is in units of 1 / (inter-ocular distances per second) and the
filter does not depend on the resolution. Frames without a face split the
track into runs that are smoothed separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jointportrait.errors import InputError
from jointportrait.faces.layout import interocular_distance


@dataclass(frozen=True)
class SmoothingConfig:
    """One Euro parameters: cutoffs in Hz, ``beta`` in Hz per (inter-ocular distance per second)."""

    min_cutoff: float = 2.0
    beta: float = 1.0
    derivative_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray:
    """Smoothing factor of an exponential low-pass with ``cutoff`` Hz at ``fps`` samples per second."""
    return 1.0 / (1.0 + fps / (2.0 * math.pi * np.asarray(cutoff)))


def one_euro(track: np.ndarray, fps: float, config: SmoothingConfig = SmoothingConfig()) -> np.ndarray:
    """One causal One Euro pass over ``track`` ``(T, N, 2)``; the speed is per point (norm over x, y)."""
    out = np.empty_like(track)
    out[0] = track[0]
    speed = np.zeros(track.shape[1])
    a_d = _alpha(config.derivative_cutoff, fps)
    for t in range(1, len(track)):
        velocity = np.linalg.norm(track[t] - out[t - 1], axis=-1) * fps  # (N,)
        speed = a_d * velocity + (1 - a_d) * speed
        a = _alpha(config.min_cutoff + config.beta * speed, fps)[:, None]  # (N, 1)
        out[t] = a * track[t] + (1 - a) * out[t - 1]
    return out


def runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of the runs of consecutive True frames."""
    edges = np.diff(np.concatenate([[0], np.asarray(valid, np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def smooth_landmarks(landmarks: np.ndarray, fps: float, valid: np.ndarray | None = None,
                     config: SmoothingConfig = SmoothingConfig()) -> np.ndarray:
    """Smoothed landmarks ``(F, 68, 2)`` (zero-lag One Euro, see the module docstring); frames where ``valid``
    is False are left as they are and split the track."""
    lmk = np.asarray(landmarks, dtype=np.float64)
    if lmk.ndim != 3 or lmk.shape[-1] != 2:
        raise InputError(f"landmarks must have shape (frames, points, 2), got {lmk.shape}")
    if fps <= 0:
        raise InputError(f"frame rate must be positive, got {fps}")
    valid = np.ones(len(lmk), bool) if valid is None else np.asarray(valid, bool)
    out = lmk.copy()
    if not valid.any():
        return out.astype(np.float32)
    scale = float(np.median(interocular_distance(lmk[valid])))
    scale = scale if scale > 1e-6 else 1.0
    for start, end in runs(valid):
        if end - start < 2:
            continue
        x = lmk[start:end] / scale
        forward = one_euro(x, fps, config)
        backward = one_euro(x[::-1], fps, config)[::-1]
        out[start:end] = 0.5 * (forward + backward) * scale
    return out.astype(np.float32)
