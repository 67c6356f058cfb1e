"""Properties of least-squares scale-and-shift alignment (paper Sec. 5.3) over generated maps."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jointportrait.alignment import align_scale_shift

VALUES = st.floats(-100.0, 100.0, allow_nan=False, width=64)


@st.composite
def maps(draw, min_size=2):
    n = draw(st.integers(min_size, 40))
    pred = draw(arrays(np.float64, n, elements=VALUES))
    target = draw(arrays(np.float64, n, elements=VALUES))
    mask = draw(arrays(np.bool_, n))
    return pred, target, mask


def _spread(x: np.ndarray) -> float:
    return float(x.max() - x.min()) if x.size else 0.0


@given(maps(), st.floats(-10.0, 10.0), st.floats(-10.0, 10.0))
def test_an_exact_affine_target_is_recovered(case, scale, shift):
    pred, _, mask = case
    assume(mask.sum() >= 2 and _spread(pred[mask]) > 1e-3)
    aligned, s, t = align_scale_shift(pred, scale * pred + shift, mask)
    assert np.isclose(s, scale, atol=1e-6) and np.isclose(t, shift, atol=1e-4)
    np.testing.assert_allclose(aligned, scale * pred + shift, atol=1e-3)


@given(maps())
def test_residual_satisfies_the_normal_equations(case):
    """At the least-squares optimum the residual is orthogonal to 1 and to the prediction."""
    pred, target, mask = case
    assume(mask.sum() >= 2 and _spread(pred[mask]) > 1e-3)
    aligned, _, _ = align_scale_shift(pred, target, mask)
    residual = (aligned - target)[mask]
    size = np.abs(target[mask]).max() + np.abs(pred[mask]).max() + 1.0  # (a wrong shift of 1 gives n)
    assert abs(residual.sum()) <= 1e-8 * mask.sum() * size**2
    assert abs((residual * pred[mask]).sum()) <= 1e-8 * mask.sum() * size**3


@given(maps(), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_no_other_scale_and_shift_fits_better(case, ds, dt):
    pred, target, mask = case
    assume(mask.any())
    aligned, s, t = align_scale_shift(pred, target, mask)
    best = ((aligned - target)[mask] ** 2).sum()
    other = (((s + ds) * pred + t + dt - target)[mask] ** 2).sum()
    assert best <= other * (1 + 1e-9) + 1e-9


@given(maps(), arrays(np.float64, 40, elements=VALUES))
def test_pixels_outside_the_mask_do_not_matter(case, noise):
    pred, target, mask = case
    changed = np.where(mask, target, noise[: target.size])
    a = align_scale_shift(pred, target, mask)
    b = align_scale_shift(pred, changed, mask)
    assert a[1] == b[1] and a[2] == b[2]


@given(maps())
def test_non_finite_pixels_are_ignored(case):
    pred, target, mask = case
    holed = pred.copy()
    holed[0] = np.nan
    mask_without = mask.copy()
    mask_without[0] = False
    a = align_scale_shift(holed, target, mask)
    b = align_scale_shift(pred, target, mask_without)
    assert np.isclose(a[1], b[1]) and np.isclose(a[2], b[2])


@given(maps())
def test_numpy_and_torch_agree(case):
    pred, target, mask = case
    a = align_scale_shift(pred, target, mask)
    b = align_scale_shift(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    # the two back ends sum in different orders (torch by thread count): agree to float64 round-off of
    # sums of up to 40 values of magnitude 100, not bit for bit
    assert np.isclose(a[1], float(b[1]), rtol=1e-6, atol=1e-6) and np.isclose(a[2], float(b[2]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a[0], b[0].numpy(), rtol=1e-6, atol=1e-6)
