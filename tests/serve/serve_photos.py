"""Test photos of the web-demo tests."""

from __future__ import annotations

import numpy as np


def portrait_like(height: int = 96, width: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth (H, W, 3) uint8 test photo: a bright ellipse on a darker noisy background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    blob = np.clip(1.0 - np.hypot((x - width / 2) / (0.35 * width), (y - height / 2) / (0.4 * height)), 0, 1)
    rgb = 40 + 180 * blob[..., None] * np.array([1.0, 0.85, 0.75]) + rng.normal(0, 6, (height, width, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)
