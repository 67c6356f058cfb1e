"""Square face crops and paste-back (paper Sec. 5.1: the model trains and runs on 512 x 512 face crops).

The crop rule is FFHQ's (Karras et al. 2019, the alignment script of the
FFHQ dataset) without its rotation, so that a crop is a plain window of the
frame and a pinhole camera stays a pinhole camera: with ``e`` the midpoint of
the eye centres, ``m`` the midpoint of the mouth corners (points 48, 54),

    centre = e + 0.1 (m - e),
    side   = max(4.0 |eye_right - eye_left|, 3.6 |m - e|)      (``margin`` = 1.0)

which frames the whole head with some hair and neck around it. ``margin``
scales the side. The box is rounded to whole pixels; where it leaves the
frame the crop is filled by replicating the border and :attr:`FaceCrop.inside`
marks the pixels that are real. A crop of ``size`` pixels of a box of ``side``
pixels at ``(x0, y0)`` sees the frame through the intrinsics

    fx' = fx s, cx' = (cx - x0 + 0.5) s - 0.5    (s = size / side; same for y)

so depth rendered with those intrinsics lands exactly on the crop
(:meth:`FaceCrop.intrinsics`). ``synth --face-crop``, ``track --face-crop``
and the ``--face-crop`` option of the image commands all use this rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from jointportrait.errors import InputError
from jointportrait.faces.layout import MOUTH_LEFT, MOUTH_RIGHT, eye_centres

EYE_FACTOR = 4.0  # side / inter-ocular distance
MOUTH_FACTOR = 3.6  # side / eye-to-mouth distance
CENTRE_SHIFT = 0.1  # centre moves from the eyes towards the mouth by this fraction


def crop_square(landmarks: np.ndarray, margin: float = 1.0) -> tuple[float, float, float]:
    """The crop square ``(centre x, centre y, side)`` in pixels of one face's landmarks ``(68, 2)``."""
    if margin <= 0:
        raise InputError(f"face crop margin must be positive, got {margin}")
    lmk = np.asarray(landmarks, dtype=np.float64)
    right, left = eye_centres(lmk)
    eyes = 0.5 * (right + left)
    mouth = 0.5 * (lmk[MOUTH_RIGHT] + lmk[MOUTH_LEFT])
    centre = eyes + CENTRE_SHIFT * (mouth - eyes)
    side = margin * max(EYE_FACTOR * np.linalg.norm(left - right), MOUTH_FACTOR * np.linalg.norm(mouth - eyes))
    return float(centre[0]), float(centre[1]), float(side)


@dataclass(frozen=True)
class FaceCrop:
    """A square window ``[x0, x0 + side) x [y0, y0 + side)`` of a ``height`` x ``width`` frame, resampled
    to ``size`` x ``size``."""

    x0: int
    y0: int
    side: int
    size: int
    height: int
    width: int

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, height: int, width: int, size: int = 512,
                       margin: float = 1.0) -> FaceCrop:
        """The crop of the face with ``landmarks`` ``(68, 2)`` in a frame of ``height`` x ``width``."""
        if size < 8:
            raise InputError(f"face crop size must be at least 8 pixels, got {size}")
        cx, cy, side = crop_square(landmarks, margin)
        side_px = max(int(round(side)), 2)
        # pixel i covers [i - 0.5, i + 0.5), so the box edge e = c - side / 2 falls on pixel e + 0.5,
        # rounded half up
        x0 = int(np.floor(cx - side_px / 2 + 1.0))
        y0 = int(np.floor(cy - side_px / 2 + 1.0))
        return cls(x0, y0, side_px, size, height, width)

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return self.size / self.side

    def _window(self) -> tuple[slice, slice, slice, slice]:
        """Frame rows/columns inside the box and the matching rows/columns of the box."""
        fy0, fy1 = max(self.y0, 0), min(self.y0 + self.side, self.height)
        fx0, fx1 = max(self.x0, 0), min(self.x0 + self.side, self.width)
        if fy0 >= fy1 or fx0 >= fx1:
            raise InputError("the face crop lies outside the frame")
        return (slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - self.y0, fy1 - self.y0),
                slice(fx0 - self.x0, fx1 - self.x0))

    def _box_pixels(self, array: np.ndarray) -> np.ndarray:
        """The box's ``side`` x ``side`` pixels of a frame-sized array, borders replicated outside the frame."""
        fy, fx, _, _ = self._window()
        top, left = fy.start - self.y0, fx.start - self.x0
        bottom, right = self.y0 + self.side - fy.stop, self.x0 + self.side - fx.stop
        return cv2.copyMakeBorder(np.ascontiguousarray(array[fy, fx]), top, bottom, left, right, cv2.BORDER_REPLICATE)

    def crop(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """The ``(size, size, ...)`` crop of a frame-sized image (area-averaged when shrinking, cubic when
        enlarging; ``nearest`` for maps whose values must not mix: depth with holes, masks)."""
        image = np.asarray(image)
        if image.shape[:2] != (self.height, self.width):
            raise InputError(f"image is {image.shape[1]}x{image.shape[0]}, the crop was made for "
                             f"{self.width}x{self.height}")
        box = self._box_pixels(image)
        if nearest:
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if self.side > self.size else cv2.INTER_CUBIC
        return cv2.resize(box, (self.size, self.size), interpolation=interp)

    @property
    def inside(self) -> np.ndarray:
        """``(size, size)`` bool: crop pixels whose centre lies inside the frame."""
        u = self.x0 - 0.5 + (np.arange(self.size) + 0.5) / self.scale  # frame x of each crop column centre
        v = self.y0 - 0.5 + (np.arange(self.size) + 0.5) / self.scale
        return ((v >= -0.5) & (v < self.height - 0.5))[:, None] & ((u >= -0.5) & (u < self.width - 0.5))[None, :]

    def paste(self, crop: np.ndarray, frame: np.ndarray | None = None, fill: float = np.nan,
              nearest: bool = False) -> np.ndarray:
        """Put a ``(size, size, ...)`` result back into the frame: resampled to the box, written over
        ``frame`` (a copy) or over a frame-sized array of ``fill`` (e.g. NaN = no depth outside the crop).
        ``nearest`` resamples without mixing values (masks, labels)."""
        crop = np.asarray(crop)
        if crop.shape[:2] != (self.size, self.size):
            raise InputError(f"result is {crop.shape[1]}x{crop.shape[0]}, the crop is {self.size}x{self.size}")
        if nearest:
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if self.size > self.side else cv2.INTER_LINEAR
        work = crop.astype(np.float32) if crop.dtype == bool else crop
        box = cv2.resize(work, (self.side, self.side), interpolation=interp).astype(crop.dtype)
        if frame is None:
            dtype = np.result_type(crop.dtype, np.min_scalar_type(fill))
            out = np.full((self.height, self.width, *crop.shape[2:]), fill, dtype=dtype)
        else:
            out = np.array(frame, copy=True)
            if out.shape[:2] != (self.height, self.width):
                raise InputError(f"frame is {out.shape[1]}x{out.shape[0]}, the crop was made for "
                                 f"{self.width}x{self.height}")
        fy, fx, by, bx = self._window()
        out[fy, fx] = box[by, bx]
        return out

    def mask(self) -> np.ndarray:
        """``(height, width)`` bool: the frame pixels the crop covers."""
        out = np.zeros((self.height, self.width), bool)
        fy, fx, _, _ = self._window()
        out[fy, fx] = True
        return out

    def intrinsics(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics ``(..., 3, 3)`` of the crop for a frame camera ``K`` (pixel centres on integers)."""
        s = self.scale
        out = np.array(K, dtype=np.float64, copy=True)
        out[..., 0, 0] *= s
        out[..., 1, 1] *= s
        out[..., 0, 1] *= s
        out[..., 0, 2] = (out[..., 0, 2] - self.x0 + 0.5) * s - 0.5
        out[..., 1, 2] = (out[..., 1, 2] - self.y0 + 0.5) * s - 0.5
        return out

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels ``(..., 2)`` -> crop pixels."""
        p = np.asarray(points, dtype=np.float64)
        return (p - [self.x0, self.y0] + 0.5) * self.scale - 0.5

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels ``(..., 2)`` -> frame pixels."""
        p = np.asarray(points, dtype=np.float64)
        return (p + 0.5) / self.scale - 0.5 + [self.x0, self.y0]

    def as_dict(self) -> dict:
        return {"x0": self.x0, "y0": self.y0, "side": self.side, "size": self.size, "height": self.height,
                "width": self.width}
