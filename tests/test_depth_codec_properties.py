"""Properties of depth normalisation (DESIGN.md "Depth as the model sees it") over generated depth maps."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jointportrait.depth_codec import normalize_depth, normalized_to_relative, relative_to_normalized

SIDES = st.integers(1, 12)
DEPTHS = st.floats(0.0, 100.0, allow_nan=False, width=64)


@st.composite
def depth_and_valid(draw):
    h, w = draw(SIDES), draw(SIDES)
    depth = draw(arrays(np.float64, (h, w), elements=DEPTHS))
    valid = draw(arrays(np.bool_, (h, w)))
    return torch.from_numpy(depth), torch.from_numpy(valid)


@given(depth_and_valid())
def test_output_in_range_and_background_is_far(case):
    depth, valid = case
    out = normalize_depth(depth, valid)
    assert out.shape == depth.shape and torch.isfinite(out).all()
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert (out[~valid] == 1.0).all()


@given(depth_and_valid())
def test_order_is_kept(case):
    """Farther stays farther (or equal, where clipping at the percentiles merges values)."""
    depth, valid = case
    out = normalize_depth(depth, valid)
    d, n = depth[valid], out[valid]
    order = torch.argsort(d)
    assert (torch.diff(n[order]) >= -1e-6).all()


@given(depth_and_valid(), st.floats(0.05, 20.0), st.floats(-50.0, 50.0))
def test_affine_invariance(case, scale, shift):
    """``normalize(a d + b) == normalize(d)`` for a > 0: the codec sees relative depth only."""
    depth, valid = case
    values = depth[valid]
    assume(values.numel() > 1 and float(values.max() - values.min()) > 1e-3)
    a = normalize_depth(depth, valid)
    b = normalize_depth(scale * depth + shift, valid)
    assert torch.allclose(a, b, atol=1e-4)


@given(st.lists(depth_and_valid(), min_size=2, max_size=3))
def test_each_map_of_a_batch_is_normalised_alone(cases):
    h, w = cases[0][0].shape
    cases = [(d, v) for d, v in cases if d.shape == (h, w)]
    batch = torch.stack([d for d, _ in cases])[:, None]  # (B, 1, H, W)
    valid = torch.stack([v for _, v in cases])[:, None]
    together = normalize_depth(batch, valid)
    for i, (d, v) in enumerate(cases):
        assert torch.equal(together[i, 0], normalize_depth(d, v))


@given(arrays(np.float64, st.tuples(SIDES, SIDES), elements=st.floats(0.0, 1.0)))
def test_relative_round_trip(relative):
    r = torch.from_numpy(relative)
    assert torch.allclose(normalized_to_relative(relative_to_normalized(r)), r, atol=1e-12)


@given(depth_and_valid())
def test_non_finite_depth_counts_as_invalid(case):
    depth, valid = case
    holes = depth.clone()
    holes[0, 0] = float("nan")
    out = normalize_depth(holes, valid)
    assert out[0, 0] == 1.0 and torch.isfinite(out).all()
