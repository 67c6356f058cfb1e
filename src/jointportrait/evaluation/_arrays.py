"""Conversion of metric inputs (NumPy arrays or torch tensors) to float64 NumPy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_array(x: Any, name: str) -> np.ndarray:
    """``x`` (array, tensor or nested list) as a float64 array; tensors are detached and moved to CPU."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def as_map(x: Any, name: str) -> np.ndarray:
    """A single-image map ``(H, W)``: leading singleton axes (``(1, 1, H, W)``, ``(1, H, W)``) are dropped."""
    arr = as_array(x, name)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be one (H, W) map, got shape {arr.shape}")
    return arr
