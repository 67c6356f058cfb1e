"""Depth (Table 1) and normal metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointportrait.evaluation.depth_metrics import align_prediction, depth_metrics
from jointportrait.evaluation.normal_metrics import normal_metrics


def test_no_alignment_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 2.0], [3.0, 5.0]])
    m = depth_metrics(pred, gt, alignment="none")
    assert m["abs_rel"] == pytest.approx(0.2 / 4)  # only |4-5|/5 is nonzero
    assert m["delta1"] == pytest.approx(0.75)  # 5/4 = 1.25 is not < 1.25
    assert m["rmse"] == pytest.approx(0.5)  # sqrt(1/4)


def test_depth_alignment_by_hand():
    pred = np.array([[0.0, 1.0, 2.0]])
    gt = np.array([[1.0, 2.0, 4.0]])
    # normal equations: n=3, sum x=3, sum y=7, sum xy=10, sum x^2=5 -> s=(30-21)/(15-9)=1.5, t=(7-4.5)/3=5/6
    # aligned = 1.5 x + 5/6 = [5/6, 7/3, 23/6]; errors [1/6, 1/3, 1/6]
    m = depth_metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx((1 / 6 + 1 / 6 + 1 / 24) / 3)
    assert m["rmse"] == pytest.approx(np.sqrt((1 / 36 + 1 / 9 + 1 / 36) / 3))
    assert m["delta1"] == pytest.approx(1.0)  # ratios 1.2, 7/6, 23/24


def test_depth_alignment_is_affine_invariant():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 1.5, (16, 16))
    m = depth_metrics(0.3 * gt - 7.0, gt)
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert m["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert m["delta1"] == 1.0


def test_disparity_alignment_recovers_affine_disparity():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.5, 1.5, (8, 8))
    disparity = 3.0 / gt - 0.5  # an affine function of 1/gt
    m = depth_metrics(disparity, gt, alignment="disparity", pred_kind="disparity")
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    depth_pred = 1.0 / (0.5 / gt + 0.1)  # its inverse is affine in 1/gt
    m = depth_metrics(depth_pred, gt, alignment="disparity")
    assert m["rmse"] == pytest.approx(0.0, abs=1e-12)


def test_disparity_alignment_against_polyfit_with_far_floor():
    q = np.array([[0.0, 1.0, 2.0, 3.0]])
    gt = np.array([[1.0, 1.0, 50.0, 100.0]])
    s, t = np.polyfit(q[0], 1.0 / gt[0], 1)  # independent least squares
    fitted = s * q[0] + t
    assert fitted[-1] < 0  # the line crosses zero: the floor 1 / (10 * 100) applies there
    expected = 1.0 / np.maximum(fitted, 1.0 / (10.0 * 100.0))
    a, _ = align_prediction(q, gt, alignment="disparity", pred_kind="disparity")
    np.testing.assert_allclose(a[0], expected, rtol=1e-10)
    assert a[0, -1] == pytest.approx(1000.0)


def test_constant_prediction_aligns_to_mean_disparity():
    a, _ = align_prediction(np.ones((1, 2)), np.array([[1.0, 2.0]]), alignment="disparity", pred_kind="disparity")
    np.testing.assert_allclose(a, 1.0 / 0.75)


def test_mask_and_invalid_ground_truth_are_excluded():
    pred = np.array([[1.0, 2.0, 100.0, 5.0, np.nan]])
    gt = np.array([[1.0, 2.0, 0.0, np.nan, 3.0]])
    mask = np.array([[1, 1, 1, 1, 1]])
    m = depth_metrics(pred, gt, mask, alignment="none")
    assert m == {"abs_rel": 0.0, "delta1": 1.0, "rmse": 0.0}
    mask = np.array([[1, 0, 1, 1, 1]])
    with pytest.raises(ValueError, match="empty"):
        depth_metrics(pred[:, 1:], gt[:, 1:], mask[:, 1:], alignment="none")


def test_nonpositive_aligned_depth_is_a_delta_miss():
    m = depth_metrics(np.array([[-1.0, 1.0]]), np.array([[1.0, 1.0]]), alignment="none")
    assert m["delta1"] == 0.5


def test_tensor_and_array_inputs_agree():
    rng = np.random.default_rng(2)
    pred, gt = rng.uniform(0, 1, (1, 1, 8, 8)), rng.uniform(1, 2, (8, 8))
    mask = rng.uniform(0, 1, (8, 8)) > 0.3
    a = depth_metrics(pred, gt, mask)
    b = depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask))
    assert a == pytest.approx(b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="alignment"):
        depth_metrics(np.ones((2, 2)), np.ones((2, 2)), alignment="log")
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(np.ones((2, 2)), np.ones((3, 2)))


def _plane_depth(normal, offset, h=12, w=16, f=20.0):
    """Depth of the plane n . P = offset seen by a pinhole camera (fx = fy = f, centred)."""
    u, v = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
    rays = np.stack([(u - (w - 1) / 2) / f, (v - (h - 1) / 2) / f, np.ones_like(u)], -1)
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return offset / (rays @ np.asarray(normal, float)), k


def test_normal_metrics_angle_between_planes_and_mask():
    gt, k = _plane_depth([0.0, 0.0, -1.0], -2.0)
    tilt = np.radians(20.0)  # a plane tilted by 20 degrees about the y axis
    pred, _ = _plane_depth([np.sin(tilt), 0.0, -np.cos(tilt)], -2.0)
    m = normal_metrics(pred, gt, alignment="none", intrinsics=k)
    assert m["normal_mean"] == pytest.approx(20.0, abs=1e-9)
    assert m["normal_median"] == pytest.approx(20.0, abs=1e-9)
    assert m["normal_within_11.25"] == 0.0
    assert m["normal_within_22.5"] == 100.0
    same = normal_metrics(gt, gt, alignment="none", intrinsics=k)
    assert same["normal_mean"] == pytest.approx(0.0, abs=1e-6)
    mask = np.zeros_like(gt)
    mask[4:8, 4:10] = 1
    masked = normal_metrics(pred, gt, mask, alignment="none", intrinsics=k)
    assert masked["normal_median"] == pytest.approx(20.0, abs=1e-9)
    with pytest.raises(ValueError, match="no pixel has a valid normal"):
        normal_metrics(pred, gt, np.eye(12, 16), alignment="none", intrinsics=k)
