"""Structural similarity, SSIM (Wang et al. 2004), for Tables 2 and 3 (paper Sec. 5.2, 5.5).

Per channel, with a normalised 11x11 Gaussian window ``w`` (sigma 1.5) and
``'valid'`` filtering (no padding)::

    mu_x = w * x,   sigma_x^2 = w * x^2 - mu_x^2,   sigma_xy = w * (x y) - mu_x mu_y
    SSIM = ((2 mu_x mu_y + C1) (2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))
    C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03, L = 1 (images in [0, 1])

The score of an image is the mean of the SSIM map over pixels and channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian ``(size,)`` in float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of ``(B, C, H, W)`` per channel."""
    c = x.shape[1]
    gx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    gy = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    return F.conv2d(F.conv2d(x, gx, groups=c), gy, groups=c)


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = WINDOW_SIZE, sigma: float = SIGMA
) -> torch.Tensor:
    """SSIM per image ``(B,)`` for images ``(B, C, H, W)`` with values in ``[0, data_range]``."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images must be at least {window_size} pixels on each side, got {tuple(x.shape[-2:])}")
    x, y = x.double(), y.double()
    g = gaussian_window(window_size, sigma).to(x.device)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _filter(x, g), _filter(y, g)  # (B, C, H-10, W-10)
    sxx = _filter(x * x, g) - mu_x**2
    syy = _filter(y * y, g) - mu_y**2
    sxy = _filter(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean(dim=(1, 2, 3))
