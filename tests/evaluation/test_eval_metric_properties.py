"""Properties of the Table 1 metrics (AbsRel, delta1, RMSE, normal errors) over generated depth maps."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jointportrait.evaluation.depth_metrics import depth_metrics
from jointportrait.evaluation.normal_metrics import angular_error_stats, normal_metrics

SIDES = st.integers(3, 10)


@st.composite
def scenes(draw):
    """Ground truth in [0.5, 5], a prediction in [0, 1], a mask with at least 3 pixels."""
    h, w = draw(SIDES), draw(SIDES)
    gt = draw(arrays(np.float64, (h, w), elements=st.floats(0.5, 5.0)))
    pred = draw(arrays(np.float64, (h, w), elements=st.floats(0.0, 1.0)))
    mask = draw(arrays(np.bool_, (h, w)))
    assume(mask.sum() >= 3)
    return pred, gt, mask


@given(scenes())
def test_metrics_are_in_range(scene):
    m = depth_metrics(*scene)
    assert m["abs_rel"] >= 0 and m["rmse"] >= 0 and 0.0 <= m["delta1"] <= 1.0
    assert all(np.isfinite(v) for v in m.values())


@given(scenes(), st.floats(0.1, 10.0), st.floats(-1.0, 1.0))
def test_a_prediction_affine_in_the_ground_truth_is_perfect(scene, scale, shift):
    _, gt, mask = scene
    assume(np.ptp(gt[mask]) > 1e-3)
    m = depth_metrics(scale * gt + shift, gt, mask)
    assert m["abs_rel"] < 1e-9 and m["rmse"] < 1e-9 and m["delta1"] == 1.0


@given(scenes(), st.floats(-5.0, 5.0).filter(lambda a: abs(a) > 0.1), st.floats(-3.0, 3.0))
def test_depth_alignment_makes_the_metrics_affine_invariant(scene, scale, shift):
    pred, gt, mask = scene
    assume(np.ptp(pred[mask]) > 1e-3)
    a = depth_metrics(pred, gt, mask)
    b = depth_metrics(scale * pred + shift, gt, mask)
    for key in a:
        assert np.isclose(a[key], b[key], rtol=1e-6, atol=1e-9), key


@given(scenes(), st.floats(0.1, 10.0))
def test_units_of_the_ground_truth(scene, unit):
    """AbsRel and delta1 do not depend on the unit of the ground truth; RMSE is in that unit."""
    pred, gt, mask = scene
    a = depth_metrics(pred, gt, mask)
    b = depth_metrics(pred, unit * gt, mask)
    assert np.isclose(a["abs_rel"], b["abs_rel"], rtol=1e-6, atol=1e-12)
    assert a["delta1"] == b["delta1"] or np.isclose(a["delta1"], b["delta1"])
    assert np.isclose(b["rmse"], unit * a["rmse"], rtol=1e-6, atol=1e-12)


@given(scenes())
def test_pixels_outside_the_mask_do_not_matter(scene):
    pred, gt, mask = scene
    other_pred = np.where(mask, pred, 0.5)
    other_gt = np.where(mask, gt, 4.0)
    assert depth_metrics(pred, gt, mask) == depth_metrics(other_pred, other_gt, mask)


@given(scenes(), st.floats(0.1, 10.0), st.floats(0.0, 2.0))
def test_disparity_alignment_is_exact_for_an_affine_disparity(scene, scale, shift):
    _, gt, mask = scene
    assume(np.ptp(gt[mask]) > 1e-2)
    disparity = scale / gt + shift
    m = depth_metrics(disparity, gt, mask, alignment="disparity", pred_kind="disparity")
    assert m["abs_rel"] < 1e-6 and m["delta1"] == 1.0


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(0.0, 180.0)))
def test_angular_error_stats(errors):
    stats = angular_error_stats(errors)
    assert 0.0 <= stats["normal_median"] <= 180.0 and 0.0 <= stats["normal_mean"] <= 180.0
    within = [stats[f"normal_within_{t}"] for t in ("11.25", "22.5", "30")]
    assert within == sorted(within) and all(0.0 <= w <= 100.0 for w in within)


@given(st.integers(4, 9), st.integers(4, 9), st.floats(-0.2, 0.2), st.floats(-0.2, 0.2), st.floats(1.0, 3.0))
def test_a_perfect_prediction_has_zero_normal_error(h, w, gx, gy, z0):
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    gt = z0 + gx * u / w + gy * v / h
    stats = normal_metrics(0.3 * gt + 0.1, gt)
    assert stats["normal_mean"] < 1e-3 and stats["normal_within_11.25"] == 100.0
