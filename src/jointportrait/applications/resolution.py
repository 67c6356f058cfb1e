"""Processing resolution: any input size -> a size the model accepts -> back to the input size.

The latent grid needs sides that are multiples of the VAE factor (8). A user's
photo of any size and aspect ratio is first scaled so that its longer side is
the processing resolution (0 keeps the input size), then brought to a multiple
of 8 either by resizing (aspect ratio changes by under 8 pixels) or by padding
with replicated edge pixels (aspect ratio kept exactly). Outputs are cropped
back and resized to the input size, so every command answers at the size it
was given (as Marigold does, Ke et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image

RESIZE_MODES = ("resize", "pad")


@dataclass(frozen=True)
class ProcessingPlan:
    """How an ``input_hw`` image maps to the model's ``model_hw`` canvas (content in the top-left ``scaled_hw``)."""

    input_hw: tuple[int, int]
    scaled_hw: tuple[int, int]
    model_hw: tuple[int, int]

    def to_model(self, image: PIL.Image.Image) -> PIL.Image.Image:
        """An RGB/L image at the input size -> the model canvas."""
        h, w = self.scaled_hw
        scaled = image.resize((w, h), PIL.Image.Resampling.LANCZOS) if (h, w) != image.size[::-1] else image
        if self.scaled_hw == self.model_hw:
            return scaled
        arr = np.asarray(scaled)
        pad = ((0, self.model_hw[0] - h), (0, self.model_hw[1] - w)) + ((0, 0),) * (arr.ndim - 2)
        return PIL.Image.fromarray(np.pad(arr, pad, mode="edge"))

    def array_to_model(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        """A float map ``(H, W)`` at the input size -> ``model_hw`` (nearest for masks and depth with holes)."""
        h, w = self.scaled_hw
        out = _resize_array(np.asarray(array, np.float32), (h, w), nearest)
        if self.scaled_hw == self.model_hw:
            return out
        return np.pad(out, ((0, self.model_hw[0] - h), (0, self.model_hw[1] - w)), mode="edge")

    def array_to_input(self, array: np.ndarray, nearest: bool = False) -> np.ndarray:
        """A map of ``model_hw`` (or already cropped to ``scaled_hw``) -> the input size (crop, then resize)."""
        h, w = self.scaled_hw
        return _resize_array(np.asarray(array, np.float32)[:h, :w], self.input_hw, nearest)

    def image_to_input(self, image: PIL.Image.Image) -> PIL.Image.Image:
        h, w = self.scaled_hw
        cropped = image.crop((0, 0, w, h))
        return cropped.resize(self.input_hw[::-1], PIL.Image.Resampling.LANCZOS) if (h, w) != self.input_hw else cropped


def _resize_array(array: np.ndarray, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    import cv2

    if array.shape[:2] == tuple(hw):
        return array
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(array, (hw[1], hw[0]), interpolation=interp)


def plan_processing(
    input_hw: tuple[int, int], processing_resolution: int, resize_mode: str = "resize", multiple: int = 8
) -> ProcessingPlan:
    """Plan for an image of ``input_hw``: longer side -> ``processing_resolution`` (0 = keep), then a multiple.

    ``resize_mode="resize"`` rounds each side to the nearest multiple (at least one
    multiple); ``"pad"`` rounds up by padding.
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"`resize_mode` must be one of {RESIZE_MODES}, got {resize_mode!r}")
    if processing_resolution < 0:
        raise ValueError(f"`processing_resolution` must be >= 0, got {processing_resolution}")
    h, w = input_hw
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {input_hw}")
    if processing_resolution:
        factor = processing_resolution / max(h, w)
        h, w = max(1, round(h * factor)), max(1, round(w * factor))
    if resize_mode == "resize":
        h, w = (max(multiple, round(s / multiple) * multiple) for s in (h, w))
        return ProcessingPlan(tuple(input_hw), (h, w), (h, w))
    model = tuple(-(-s // multiple) * multiple for s in (h, w))
    return ProcessingPlan(tuple(input_hw), (h, w), model)
