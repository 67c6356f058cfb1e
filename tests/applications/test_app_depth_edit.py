"""A depth edit for editing (paper Sec. 5.4): push or pull a painted region, against values by hand."""

from __future__ import annotations

import numpy as np

from jointportrait.applications.editing import push_pull_depth


def test_push_pull_depth_by_hand():
    depth = np.linspace(0, 1, 64 * 48).reshape(64, 48).astype(np.float32)
    region = np.zeros((64, 48), bool)
    region[20:40, 14:34] = True
    hard = push_pull_depth(depth, region, -0.2)
    np.testing.assert_allclose(hard - depth, np.where(region, -0.2, 0.0), atol=1e-6)
    soft = push_pull_depth(depth, region, 0.3, feather=2.0)
    change = soft.astype(np.float64) - depth
    assert abs(change.sum() - 0.3 * region.sum()) < 1e-3 * region.sum()  # a Gaussian keeps the total
    np.testing.assert_allclose(change[28:32, 22:26], 0.3, atol=1e-4)  # deep inside: the full offset
    np.testing.assert_allclose(change[:8], 0.0, atol=1e-7)  # far outside: untouched
    assert 0.1 < change[30, 14] < 0.2  # on the border: about half
