"""Least-squares scale/shift alignment against hand-worked values (numpy and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointportrait.alignment import align_scale_shift


def test_exact_affine_numpy():
    # target = 2 * pred + 1 exactly -> s = 2, t = 1
    aligned, s, t = align_scale_shift(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    assert s == pytest.approx(2.0) and t == pytest.approx(1.0)
    np.testing.assert_allclose(aligned, [1.0, 3.0, 5.0])


def test_hand_worked_least_squares_and_mask():
    # pred (0, 1, 2), target (0, 2, 1): mean p = 1, mean g = 1, cov = (-1)(-1) + 0 + (1)(0) = 1, var = 2
    # -> s = 0.5, t = 1 - 0.5 = 0.5; the fourth pixel is masked out (and would be an outlier)
    pred = np.array([0.0, 1.0, 2.0, 10.0])
    target = np.array([0.0, 2.0, 1.0, -50.0])
    aligned, s, t = align_scale_shift(pred, target, np.array([True, True, True, False]))
    assert (s, t) == (pytest.approx(0.5), pytest.approx(0.5))
    assert aligned[3] == pytest.approx(5.5)  # applied to the whole map


def test_torch_matches_numpy_and_keeps_type():
    rng = np.random.default_rng(0)
    pred, target = rng.random((8, 9)), rng.random((8, 9))
    mask = rng.random((8, 9)) > 0.3
    a_np, s_np, t_np = align_scale_shift(pred, target, mask)
    a_t, s_t, t_t = align_scale_shift(torch.tensor(pred), torch.tensor(target), torch.tensor(mask))
    assert torch.is_tensor(a_t) and a_t.shape == (8, 9)
    assert float(s_t) == pytest.approx(s_np) and float(t_t) == pytest.approx(t_np)
    np.testing.assert_allclose(a_t.numpy(), a_np, rtol=1e-6)


def test_nonfinite_ignored_and_constant_prediction():
    aligned, s, t = align_scale_shift(np.array([0.0, 1.0, np.nan]), np.array([1.0, 3.0, 7.0]))
    assert (s, t) == (pytest.approx(2.0), pytest.approx(1.0))
    aligned, s, t = align_scale_shift(np.ones(4), np.array([1.0, 2.0, 3.0, 6.0]))
    assert s == 0.0 and t == pytest.approx(3.0)
    np.testing.assert_allclose(aligned, 3.0)
