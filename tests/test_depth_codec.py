"""Depth normalisation (DESIGN.md): 2nd-98th percentile over the valid mask -> [-1, 1], invalid -> +1."""

import numpy as np
import torch

from jointportrait.depth_codec import normalize_depth, normalized_to_relative, relative_to_normalized


def test_percentile_mapping_matches_numpy():
    rng = np.random.default_rng(0)
    depth = rng.uniform(50.0, 90.0, size=(16, 16)).astype(np.float32)
    valid = np.ones_like(depth, dtype=bool)
    valid[:4] = False
    depth[:4] = 0.0  # background holds garbage
    lo, hi = np.percentile(depth[valid], [2, 98])  # numpy's linear interpolation, computed independently
    expected = np.clip(2 * (depth - lo) / (hi - lo) - 1, -1, 1)
    expected[~valid] = 1.0
    out = normalize_depth(torch.from_numpy(depth), torch.from_numpy(valid)).numpy()
    assert np.allclose(out, expected, atol=1e-5)
    assert out[valid].min() == -1.0 and out[valid].max() == 1.0


def test_hand_worked_values_and_batch():
    # 0..100 over 101 pixels: p2 = 2, p98 = 98 -> d = 50 maps to 0, d = 2 to -1, d = 74 to 0.5
    d = torch.arange(101, dtype=torch.float32).view(1, 1, 1, 101)
    out = normalize_depth(torch.cat([d, d * 2]))
    assert out.shape == (2, 1, 1, 101)
    assert out[0, 0, 0, 50] == 0.0 and out[0, 0, 0, 2] == -1.0 and abs(out[0, 0, 0, 74] - 0.5) < 1e-6
    assert torch.allclose(out[0], out[1])  # affine invariance: scaling depth changes nothing


def test_non_finite_and_empty_masks():
    d = torch.tensor([[1.0, float("nan")], [float("inf"), 3.0]])
    out = normalize_depth(d)
    assert out[0, 1] == 1.0 and out[1, 0] == 1.0  # non-finite pixels are invalid -> far plane
    assert torch.equal(normalize_depth(d, torch.zeros(2, 2, dtype=torch.bool)), torch.ones(2, 2))


def test_relative_round_trip():
    x = torch.linspace(0, 1, 11)
    assert torch.allclose(normalized_to_relative(relative_to_normalized(x)), x)
    assert normalized_to_relative(torch.tensor(-1.0)) == 0.0  # near
