"""The dlib detector on a real photograph: a face found, landmarks close to hand labels, equivariant to
horizontal flips and shifts; the optional extra's one-line error."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from jointportrait.errors import MissingDependencyError
from jointportrait.faces import FLIP_PERMUTATION, FaceDetector, NoFaceError, mirror_landmarks, select_face
from jointportrait.faces.detector import auto_upsample
from jointportrait.faces.layout import normalised_error


def test_flip_permutation_is_a_mirror_involution():
    assert np.array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))
    # pairs checked against the 68-point chart: jaw ends, eye corners, mouth corners; nose bridge on the axis
    for a, b in ((0, 16), (8, 8), (17, 26), (36, 45), (39, 42), (31, 35), (48, 54), (51, 51), (57, 57), (60, 64)):
        assert FLIP_PERMUTATION[a] == b
    points = np.random.default_rng(0).uniform(0, 100, (68, 2))
    np.testing.assert_allclose(mirror_landmarks(mirror_landmarks(points, 101), 101), points)


def test_astronaut_face_found_and_close_to_hand_labels(astronaut, detector, astronaut_hand_labels):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 170 < x0 < x1 < 280 and 70 < y0 < y1 < 185 and face.score > 0.5
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    idx = np.array(list(astronaut_hand_labels))
    hand = np.array(list(astronaut_hand_labels.values()))
    error = np.linalg.norm(face.landmarks[idx] - hand, axis=1)
    outer_eyes = np.linalg.norm(hand[list(idx).index(45)] - hand[list(idx).index(36)])  # 64 px
    # bound: mean error under 0.06 of the outer-eye-corner distance (the 300-W normalisation; dlib's model
    # scores about 0.04 here, 2.5 px) and no point off by more than 0.12 (7.7 px)
    assert error.mean() / outer_eyes < 0.06
    assert error.max() / outer_eyes < 0.12


def test_landmarks_equivariant_to_flips_and_shifts(astronaut, detector):
    base = detector.detect(astronaut)[0].landmarks
    flipped = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))[0].landmarks
    back = mirror_landmarks(flipped, astronaut.shape[1])
    assert normalised_error(back, base) < 0.02  # about 0.2 px on average
    assert np.abs(back - base).max() <= 2.0
    for dx, dy in ((3, 0), (0, 5), (7, 7)):
        shifted = np.zeros_like(astronaut)
        shifted[dy:, dx:] = astronaut[: astronaut.shape[0] - dy, : astronaut.shape[1] - dx]
        moved = detector.detect(shifted)[0].landmarks - np.array([dx, dy])
        assert np.abs(moved - base).mean() < 0.6 and np.abs(moved - base).max() <= 2.0


def test_no_face_and_several_faces(astronaut, detector):
    empty = np.full((200, 300, 3), 128, np.uint8)
    assert detector.detect(empty) == []
    with pytest.raises(NoFaceError, match="photo.png: no face found"):
        select_face(detector.detect(empty), where="photo.png")
    # two copies of the face side by side, the right one smaller: largest first, face_index picks the other
    face = astronaut[60:200, 150:300]  # (140, 150, 3), the face box is about 88 px
    large = cv2.resize(face, None, fx=1.4, fy=1.4, interpolation=cv2.INTER_CUBIC)  # (196, 210, 3)
    canvas = np.full((240, 400, 3), 200, np.uint8)
    canvas[20:216, 5:215] = large
    canvas[50:190, 240:390] = face
    faces = detector.detect(canvas)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert faces[0].centre[0] < 225 < faces[1].centre[0]
    assert select_face(faces, 1) is faces[1]
    with pytest.raises(NoFaceError, match="face index 2 asked for, but only 2 face"):
        select_face(faces, 2)


def test_auto_upsample_reaches_the_hog_window():
    assert auto_upsample(512, 512) == 0
    assert auto_upsample(144, 176) == 1  # the carphone clip
    assert auto_upsample(40, 60) == 2


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # what `import dlib` sees when it is not installed
    with pytest.raises(MissingDependencyError) as info:
        FaceDetector()
    message = str(info.value)
    assert "jointportrait[faces]" in message and "dlib-bin" in message and "\n" not in message


def test_bad_image_is_an_input_error(detector):
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((10, 10), np.uint8))
