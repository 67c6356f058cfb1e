"""The seam score (paper Sec. 5.5, 7.1): boundary change over inner change, checked on hand-made videos."""

import numpy as np
import pytest

from jointportrait.evaluation.seams import frame_changes, seam_score


def test_frame_changes_by_hand():
    frames = np.array([0.0, 0.1, 0.3, 0.6])[:, None, None] * np.ones((4, 2, 3))
    assert np.allclose(frame_changes(frames), [0.1, 0.2, 0.3])


def test_a_linear_ramp_is_seamless_and_a_jump_is_not():
    ramp = np.linspace(0, 1, 12)[:, None, None, None] * np.ones((12, 4, 4, 3))
    s = seam_score(ramp, [0, 4, 8])
    assert s.boundaries == 2 and s.score == pytest.approx(1.0)
    jumpy = ramp.copy()
    jumpy[4:] += 0.5  # clip 2 and 3 start higher: one boundary of 0.5 + 1/11, the other unchanged
    s = seam_score(jumpy, [0, 4, 8])
    step = 1 / 11
    assert s.boundary_change == pytest.approx(((0.5 + step) + step) / 2)
    assert s.inner_change == pytest.approx(step)
    assert s.score == pytest.approx((0.5 + 2 * step) / 2 / step)


def test_undefined_cases_are_nan_and_bad_starts_are_refused():
    frames = np.random.default_rng(0).random((5, 2, 2))
    assert np.isnan(seam_score(frames, [0]).score)  # one clip: no boundary
    assert np.isnan(seam_score(np.zeros((4, 2)), [0, 2]).score)  # nothing changes inside
    with pytest.raises(ValueError):
        seam_score(frames, [1, 3])
    with pytest.raises(ValueError):
        seam_score(frames, [0, 5])
