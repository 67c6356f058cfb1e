"""``--face-crop``: run a model on the square face crop of a photo and paste the result back (paper Sec. 5.1:
the model trains on 512 x 512 face crops).

Shared by ``estimate-depth``, ``depth-to-image``, ``edit``, ``relight`` and
``generate``: the face of the input photo is detected (the ``faces`` extra;
the largest, or ``--face-index``), cropped with the training data's rule
(:mod:`jointportrait.faces.crop`, ``--face-margin``) at ``--crop-size``, the
model runs on the crop, and its result is pasted back into the full frame:
depth is NaN (no data) outside the crop, images keep the input outside it.
"""

from __future__ import annotations

import argparse
from functools import cache

import numpy as np

from jointportrait.errors import InputError


def add_face_crop_arguments(parser: argparse.ArgumentParser) -> None:
    """``--face-crop --crop-size --face-index --face-margin``."""
    group = parser.add_argument_group("face crop (needs the faces extra)")
    group.add_argument("--face-crop", action="store_true",
                       help="find the face, run the model on its square crop (the training data's crop rule) "
                            "and paste the result back into the full frame")
    group.add_argument("--crop-size", type=int, default=512, help="side of the face crop in pixels")
    group.add_argument("--face-index", type=int, default=0, help="which face when there are several (0 = largest)")
    group.add_argument("--face-margin", type=float, default=1.0, help="scale of the face crop's side")


def check_face_crop_arguments(args: argparse.Namespace) -> None:
    """Validates the options and, with ``--face-crop``, loads the detector (a missing extra fails here, before
    any model is loaded or file written)."""
    if not getattr(args, "face_crop", False):
        return
    if args.crop_size < 16 or args.crop_size % 8:
        raise InputError(f"--crop-size must be a multiple of 8 and at least 16, got {args.crop_size}")
    if args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    if args.face_margin <= 0:
        raise InputError(f"--face-margin must be positive, got {args.face_margin}")
    face_detector()


@cache
def face_detector(method: str = "hog"):
    """One detector per method and process (loading dlib's 100 MB landmark model takes a while)."""
    from jointportrait.faces import FaceDetector

    return FaceDetector(method=method)


def face_crop(args: argparse.Namespace, image, where: str):
    """The :class:`~jointportrait.faces.FaceCrop` of the chosen face of a PIL ``image`` (a one-line error
    naming ``where`` when there is no such face), or None without ``--face-crop``."""
    from jointportrait.faces import FaceCrop, select_face

    if not getattr(args, "face_crop", False):
        return None
    pixels = np.asarray(image.convert("RGB"))
    faces = face_detector().detect(pixels)
    face = select_face(faces, args.face_index, where=where)
    if len(faces) > 1:
        print(f"{where}: {len(faces)} faces found; cropping index {args.face_index} (largest first)")
    return FaceCrop.from_landmarks(face.landmarks, *pixels.shape[:2], size=args.crop_size, margin=args.face_margin)


def crop_image(crop, image):
    """The crop of a PIL image, as a PIL image."""
    from PIL import Image

    return Image.fromarray(crop.crop(np.asarray(image.convert("RGB"))))


def crop_map(crop, values: np.ndarray, name: str) -> np.ndarray:
    """The crop of a per-pixel map (depth, mask) without mixing values; NaN is allowed outside the crop
    only (e.g. a depth written by ``estimate-depth --face-crop``)."""
    values = np.asarray(values)
    out = crop.crop(values.astype(np.float32) if values.dtype == bool else values, nearest=True)
    if values.dtype == bool:
        return out > 0.5
    if not np.isfinite(out[crop.inside]).all():
        raise InputError(f"{name}: NaN or infinite values inside the face crop")
    return out


def paste_depth(crop, depth: np.ndarray | None) -> np.ndarray | None:
    """A crop-sized map back at the frame's size, NaN outside the crop."""
    if depth is None:
        return None
    return crop.paste(np.asarray(depth, np.float32), fill=np.nan).astype(np.float32)


def paste_image(crop, result, frame):
    """A crop-sized PIL result pasted over the PIL ``frame`` (the input outside the crop)."""
    from PIL import Image

    pasted = crop.paste(np.asarray(result.convert("RGB").resize((crop.size, crop.size))),
                        frame=np.asarray(frame.convert("RGB")))
    return Image.fromarray(pasted)
