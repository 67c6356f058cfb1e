"""The demo's expression and pose error table (demo/video_motion.py): averaging, row order, the missing extra."""

import sys

import numpy as np
import pytest

from jointportrait.demo.report import _motion_section
from jointportrait.demo.video_motion import MEASUREMENT, STILL, DemoMotionScorer, MotionRows
from jointportrait.evaluation.facial_motion import FacialMotion
from jointportrait.face_models import load_face_model


def _motion(expression, yaw, usable) -> FacialMotion:
    rotation = np.zeros((len(yaw), 3))
    rotation[:, 1] = yaw
    return FacialMotion(np.asarray(expression, float), rotation, np.asarray(usable, bool))


def test_rows_average_over_the_animations_with_frames_compared():
    table = MotionRows({"ours": []})
    driver = _motion([[0.0, 0.0], [1.0, 1.0]], [0.0, 0.0], [True, True])
    table.add("ours", _motion([[0.5, 0.5], [1.0, 2.0]], [0.1, 0.0], [True, True]), driver)  # 0.5, 2.865 deg
    table.add("ours", _motion([[9.0, 9.0], [9.0, 9.0]], [0.5, 0.5], [False, False]), driver)  # no face found
    table.add("ours", _motion([[0.0, 1.0], [5.0, 5.0]], [0.0, 0.2], [True, False]), driver)  # frame 0: 0.5, 0 deg
    row = table.summary()["ours"]
    # expression: (0.5 + 0.5 + 0 + 1) / 4 = 0.5 and (0 + 1) / 2 = 0.5; pose: (0.1 rad + 0) / 2 = 2.8648 deg and 0
    assert row["expression_error"] == pytest.approx((0.5 + 0.5) / 2)
    assert row["pose_error"] == pytest.approx((np.degrees(0.1) / 2 + 0.0) / 2)
    assert (row["animations"], row["of_animations"], row["frames_compared"], row["frames"]) == (2, 3, 3, 6)
    table.add("none found", _motion([[0.0, 0.0]], [0.0], [False]), _motion([[0.0, 0.0]], [0.0], [True]))
    empty = table.summary()["none found"]
    assert empty["expression_error"] is None and empty["pose_error"] is None and empty["frames_compared"] == 0


def test_without_the_faces_extra_the_page_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # what `import dlib` sees when it is not installed
    scorer, why = DemoMotionScorer.create(load_face_model("procedural"), ("motion frames",))
    assert scorer is None and "jointportrait[faces]" in why
    page = _motion_section({"not_computed": f"expression and pose error need the face detector: {why}"})
    assert "jointportrait[faces]" in page and "<table>" not in page


def test_the_table_lists_the_methods_then_the_two_reference_rows(detector):
    scorer = DemoMotionScorer(load_face_model("procedural"), detector, ("motion frames", "independent clips"))
    assert list(scorer.table.rows) == ["motion frames", "independent clips", STILL, MEASUREMENT]
