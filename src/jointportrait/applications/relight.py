"""Relighting a portrait with its depth (paper Suppl. 8.2, Fig. 11).

depth -> normals (:mod:`jointportrait.geometry.normals`) -> new diffuse shading
(:mod:`jointportrait.appearance.shading`) -> image.
Two ways to apply the shading:

- ``"multiply"``: ``I' = I * S_new`` (the paper's post-process);
- ``"ratio"``: ``I' = I * S_new / S_old``, where ``S_old`` is the photo's own shading
  estimated by fitting 9 SH coefficients to its luminance (constant albedo). This removes
  the original light's shading before adding the new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointportrait.appearance.shading import fit_sh_lighting, sh_shading

RELIGHT_MODES = ("multiply", "ratio")
# Rec. 709 luma weights
LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass
class RelightResult:
    image: np.ndarray  # (H, W, 3) float in [0, 1]
    shading: np.ndarray  # (H, W) or (H, W, 3) new shading
    original_shading: np.ndarray | None  # (H, W) estimated shading of the photo ("ratio" mode)


def relight_image(image: np.ndarray, normals: np.ndarray, shading: np.ndarray, mode: str = "multiply",
                  mask: np.ndarray | None = None, eps: float = 0.05) -> RelightResult:
    """Apply ``shading`` (``(H, W)`` or ``(H, W, 3)``) to ``image`` ``(H, W, 3)`` in [0, 1].

    Pixels outside ``mask`` or without a normal keep their colour. ``eps`` floors the
    estimated original shading in ``"ratio"`` mode (no division blow-up in shadows).
    """
    if mode not in RELIGHT_MODES:
        raise ValueError(f"`mode` must be one of {RELIGHT_MODES}, got {mode!r}")
    img = np.asarray(image, np.float64)
    n = np.asarray(normals, np.float64)
    valid = np.any(n != 0, axis=-1)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    shade = np.asarray(shading, np.float64)
    factor = shade if shade.ndim == 3 else shade[..., None]  # (H, W, 1 or 3)
    original = None
    if mode == "ratio":
        coeffs = fit_sh_lighting(img @ LUMA, n, valid)
        original = sh_shading(n, coeffs)
        # the fit absorbs the mean albedo into the shading; divide it out so S_old averages 1 like S_new's scale
        original = original / max(float(original[valid].mean()), 1e-12)
        factor = factor / np.maximum(original, eps)[..., None]
    out = np.where(valid[..., None], img * factor, img)
    return RelightResult(np.clip(out, 0.0, 1.0), shade, original)
