"""sRGB <-> linear RGB against values of the IEC 61966-2-1 transfer function worked by hand."""

from __future__ import annotations

import torch

from jointportrait.appearance.color import linear_to_srgb, srgb_to_linear


def test_hand_values():
    srgb = torch.tensor([0.0, 0.02, 0.04045, 0.5, 1.0], dtype=torch.float64)
    # 0.02 / 12.92; ((0.5 + 0.055) / 1.055) ** 2.4 = 0.2140411; the two branches meet at 0.04045 -> 0.0031308
    expected = torch.tensor([0.0, 0.02 / 12.92, 0.0031308, 0.2140411, 1.0], dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(srgb), expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(linear_to_srgb(expected), srgb, atol=1e-6, rtol=0)


def test_round_trip_clipping_and_dtype():
    x = torch.linspace(0.0, 1.0, 101)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6, rtol=0)
    assert srgb_to_linear(x).dtype == torch.float32
    torch.testing.assert_close(linear_to_srgb(torch.tensor([-0.5, 2.0])), torch.tensor([0.0, 1.0]))
    assert float(srgb_to_linear(torch.tensor(-0.2))) < 0.0  # negatives stay on the linear segment
