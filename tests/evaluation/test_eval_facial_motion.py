"""Expression and pose error (Table 3 cross reenactment): the geodesic angle by hand, and the tracker's fits of
landmarks made from the face model with known expression and head pose."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jointportrait.evaluation.facial_motion import (
    FacialMotion,
    axis_angle_matrices,
    expression_error,
    fit_facial_motion,
    motion_errors,
    pose_error,
    rotation_geodesic_degrees,
)
from jointportrait.face_models import load_face_model
from jointportrait.tracking.params import TrackParams, landmark_points, project
from jointportrait.tracking.stages import TrackerConfig, prior_focal


def _rx(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_geodesic_angle_by_hand():
    # Rz(30)^T Rx(40) has trace cos30 + cos30 cos40 + cos40 = 0.866025 + 0.663414 + 0.766044 = 2.295484,
    # so the angle is arccos((2.295484 - 1) / 2) = arccos(0.647742) = 49.6284 degrees.
    got = rotation_geodesic_degrees(np.stack([_rz(30), _rx(10), _rx(90), _rx(20)]),
                                    np.stack([_rx(40), _rx(35), _rx(-90), _rx(20 + 1e-7)]))
    np.testing.assert_allclose(got, [49.6284, 25.0, 180.0, 1e-7], rtol=1e-5, atol=0)
    # the same through axis-angle vectors, as the tracker stores them
    np.testing.assert_allclose(axis_angle_matrices([[0.0, 0.0, math.radians(30)]])[0], _rz(30), atol=1e-12)
    assert pose_error([[0.0, 0.0, math.radians(30)], [0.1, 0, 0]],
                      [[math.radians(40), 0.0, 0.0], [0.1, 0, 0]]) == pytest.approx(49.6284 / 2, rel=1e-5)
    with pytest.raises(ValueError, match="3x3"):
        rotation_geodesic_degrees(np.eye(3)[None], np.eye(2)[None])


def test_expression_error_is_the_mean_absolute_difference():
    assert expression_error([[0.0, 1.0], [2.0, -1.0]], [[0.5, 1.0], [0.0, 0.0]]) == pytest.approx((0.5 + 2 + 1) / 4)


def test_motion_errors_compare_frames_both_fits_use():
    nan = np.full(2, np.nan)
    gen = FacialMotion(np.array([[1.0, 1.0], nan, [0.0, 0.0]]), np.zeros((3, 3)), np.array([True, False, True]))
    drv = FacialMotion(np.array([[0.0, 0.0], [5.0, 5.0], nan]), np.zeros((3, 3)), np.array([True, True, False]))
    errors = motion_errors(gen, drv)
    assert (errors.expression, errors.pose_degrees, errors.frames, errors.total) == (1.0, 0.0, 1, 3)
    none = FacialMotion(np.full((3, 2), np.nan), np.full((3, 3), np.nan), np.zeros(3, bool))
    assert motion_errors(gen, none) is None


SIZE, FRAMES = 256, 2


def _landmarks(model, seed: int, yaw_deg: float, expression: torch.Tensor) -> np.ndarray:
    """68 landmarks (F, 68, 2) of a random identity with ``expression`` and a head turned by ``yaw_deg``."""
    gen = torch.Generator().manual_seed(seed)
    params = TrackParams.initial(model, FRAMES, prior_focal(SIZE, SIZE, TrackerConfig()))
    params.identity.copy_(torch.randn(1, 50, generator=gen) * 0.7)
    params.expression.copy_(expression)
    params.rotation[:, 0] = 0.1
    params.rotation[:, 1] = math.radians(yaw_deg) + torch.linspace(-0.1, 0.1, FRAMES)
    params.translation[:] = torch.tensor([0.0, 0.0, 60.0])
    return project(landmark_points(model, params), params.intrinsics(SIZE, SIZE)).numpy().astype(np.float32)


def test_fitted_clips_give_the_pose_offset_and_tell_expressions_apart():
    """Driver: identity A, expression e, pose p. Generated: identity B with (e, p + 10 deg yaw), or with the
    neutral expression and pose p. Measured (ICT, landmark fit): pose 9.9 / 0.7 deg, expression 0.034 / 0.159."""
    model = load_face_model("ict")
    config = TrackerConfig(photometric=False, rigid_steps=10, shape_steps=40)
    expression = torch.randn(FRAMES, 25, generator=torch.Generator().manual_seed(5)) * 0.8
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)  # a landmark-only fit does not look at the pixels
    driver = fit_facial_motion(model, frames, _landmarks(model, 0, 0.0, expression), config)
    turned = fit_facial_motion(model, frames, _landmarks(model, 1, 10.0, expression), config)
    neutral = fit_facial_motion(model, frames, _landmarks(model, 1, 0.0, torch.zeros(FRAMES, 25)), config)
    same_expression, other_expression = motion_errors(turned, driver), motion_errors(neutral, driver)
    assert same_expression.frames == FRAMES and driver.diverged is None
    assert same_expression.pose_degrees == pytest.approx(10.0, abs=1.0)
    assert other_expression.pose_degrees < 1.5
    assert other_expression.expression > 3 * same_expression.expression


def test_frames_without_a_face_are_left_out_of_the_fit():
    model = load_face_model("procedural")
    landmarks = np.full((2, 68, 2), np.nan, np.float32)
    motion = fit_facial_motion(model, np.zeros((2, 32, 32, 3), np.uint8), landmarks)
    assert motion.diverged == "no face found in any frame" and not motion.usable.any()
    assert motion.expression.shape == (2, 25) and np.isnan(motion.expression).all()
