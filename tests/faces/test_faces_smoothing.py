"""Temporal smoothing (zero-lag One Euro) and following one face through a video."""

from __future__ import annotations

import numpy as np
import pytest

from jointportrait.faces import DetectedFace, follow_face, smooth_landmarks
from jointportrait.faces.smoothing import SmoothingConfig, _alpha, one_euro, runs


def _track(frames: int, velocity: float = 0.0, seed: int = 0, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A face 60 px between the eyes moving right at ``velocity`` px per frame, plus Gaussian jitter."""
    base = np.random.default_rng(seed).uniform(0, 120, (68, 2))
    base[36:42], base[42:48] = (100.0, 100.0), (160.0, 100.0)
    clean = base[None] + np.arange(frames)[:, None, None] * np.array([velocity, 0.0])
    noisy = clean + np.random.default_rng(seed + 1).normal(0, noise, clean.shape)
    return clean, noisy


def test_alpha_is_the_exponential_smoothing_factor():
    # alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi fc): fc = 25 / (2 pi) Hz at 25 fps gives tau = dt -> 1/2
    assert float(_alpha(25 / (2 * np.pi), 25.0)) == pytest.approx(0.5)


def test_still_face_jitter_is_reduced():
    clean, noisy = _track(60, noise=1.5)
    smoothed = smooth_landmarks(noisy, fps=25.0)
    before = np.linalg.norm(noisy - clean, axis=-1).mean()
    after = np.linalg.norm(smoothed - clean, axis=-1).mean()
    assert after < 0.5 * before


def test_forward_backward_has_no_lag_on_constant_motion():
    clean, _ = _track(80, velocity=2.0)
    one_way = one_euro(clean / 60.0, 25.0) * 60.0
    lag = (clean - one_way)[25:55, :, 0].mean()
    assert lag > 1.0  # a causal pass trails the motion by about a frame (2.1 px)...
    smoothed = smooth_landmarks(clean, fps=25.0)
    assert np.abs(smoothed - clean)[25:55].max() < 0.01  # ...the averaged passes do not (once settled)
    assert np.abs(smoothed - clean).max() < 1.1  # at the ends one pass has not settled: half a frame of motion


def test_gaps_split_the_track_and_are_left_alone():
    assert runs(np.array([1, 1, 0, 1, 1, 1, 0, 0, 1], bool)) == [(0, 2), (3, 6), (8, 9)]
    clean, noisy = _track(12, noise=1.0)
    valid = np.ones(12, bool)
    valid[5] = False
    noisy[5] = 0.0  # whatever a frame without a face holds must not leak into its neighbours
    smoothed = smooth_landmarks(noisy, fps=25.0, valid=valid)
    np.testing.assert_array_equal(smoothed[5], 0.0)
    assert np.abs(smoothed[4] - clean[4]).max() < 5.0 and np.abs(smoothed[6] - clean[6]).max() < 5.0


def test_faster_motion_raises_the_cutoff():
    slow = one_euro(np.linspace(0, 1, 30)[:, None, None].repeat(2, -1), 25.0, SmoothingConfig(beta=5.0))
    stiff = one_euro(np.linspace(0, 1, 30)[:, None, None].repeat(2, -1), 25.0, SmoothingConfig(beta=0.0))
    assert np.abs(slow[-1] - 1.0).max() < np.abs(stiff[-1] - 1.0).max()


def _face(x: float, size: float = 80.0) -> DetectedFace:
    return DetectedFace(box=(x - size / 2, 50 - size / 2, x + size / 2, 50 + size / 2),
                        landmarks=np.zeros((68, 2), np.float32), score=1.0)


def test_follow_face_keeps_the_same_person():
    a, b = [_face(100 + 5 * t) for t in range(5)], [_face(400 - 3 * t, size=120) for t in range(5)]
    frames = [[b[0], a[0]], [a[1], b[1]], [], [b[3]], [b[4], a[4]]]
    chosen = follow_face(frames, face_index=1)  # the smaller face (index 1 in frame 0)
    assert chosen[0] is a[0] and chosen[1] is a[1] and chosen[2] is None
    assert chosen[3] is None  # only the other person is there, far away
    assert chosen[4] is a[4]
    assert follow_face(frames)[0] is b[0]
    assert follow_face([[], [a[0]]], face_index=0) == [None, a[0]]
