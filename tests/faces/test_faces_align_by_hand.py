"""The five-point ArcFace alignment of identity similarity (Table 3), checked against examples worked by hand."""

from __future__ import annotations

import numpy as np

from jointportrait.faces.align import ARCFACE_TEMPLATE, align_to_template, five_points, similarity_transform


def test_umeyama_exact_similarity_by_hand():
    # (x, y) -> (-y, x) + (1, 1): a quarter turn, scale 1, shift (1, 1)
    src = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    dst = np.array([[1.0, 1.0], [1.0, 3.0], [-1.0, 1.0]])
    np.testing.assert_allclose(similarity_transform(src, dst), [[0.0, -1.0, 1.0], [1.0, 0.0, 1.0]], atol=1e-12)


def test_umeyama_least_squares_by_hand():
    """A stretch no similarity can make: x doubled, y kept. Both point sets are centred; the cross-covariance
    is ``sum d s^T / 4 = [[1, 0], [0, 0.5]]`` (already diagonal: U = V = I, singular values 1 and 0.5), the
    source variance is 0.5 + 0.5 = 1, so R = I, s = (1 + 0.5) / 1 = 1.5 and t = 0."""
    src = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    dst = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    np.testing.assert_allclose(similarity_transform(src, dst), [[1.5, 0.0, 0.0], [0.0, 1.5, 0.0]], atol=1e-12)


def test_five_points_from_68_landmarks_by_hand():
    lmk = np.zeros((68, 2))
    lmk[36:42] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]  # image-left eye, centre (13, 20)
    lmk[42:48] = lmk[36:42] + [30, 2]  # image-right eye, centre (43, 22)
    lmk[30], lmk[48], lmk[54] = [28, 35], [18, 50], [38, 51]  # nose tip, mouth corners
    np.testing.assert_allclose(five_points(lmk), [[13, 20], [43, 22], [28, 35], [18, 50], [38, 51]])


def test_alignment_puts_the_five_points_on_the_template():
    """A face whose five points are the template scaled by 3, turned by 20 degrees and shifted lands, after the
    warp, with a bright dot at each template point."""
    angle = np.radians(20.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = 3.0 * ARCFACE_TEMPLATE @ rot.T + [100.0, 40.0]
    lmk = np.zeros((68, 2))
    lmk[36:42], lmk[42:48] = points[0], points[1]  # six equal points: the centre is the point itself
    lmk[30], lmk[48], lmk[54] = points[2], points[3], points[4]
    image = np.zeros((480, 480, 3), np.uint8)
    for x, y in points.round().astype(int):
        image[y - 4:y + 5, x - 4:x + 5] = 255
    crop = align_to_template(image, lmk)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE.round().astype(int):
        assert crop[y, x].min() > 200
    assert crop.mean() < 40  # only the dots are bright
