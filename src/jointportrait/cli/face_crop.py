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

from functools import cache

import numpy as np

from jointportrait.errors import InputError


@cache
def face_detector(method: str = "hog"):
    """One detector per method and process (loading dlib's 100 MB landmark model takes a while)."""
    from jointportrait.faces import FaceDetector

    return FaceDetector(method=method)


def face_crop(options, image, where: str):
    """The :class:`~jointportrait.faces.FaceCrop` of the chosen face of a PIL ``image`` (a one-line error
    naming ``where`` when there is no such face), or None without ``--face-crop``. ``options``: the command's
    :class:`~jointportrait.cli.options.FaceCropOptions`."""
    from jointportrait.faces import FaceCrop, select_face

    if not options.enabled:
        return None
    pixels = np.asarray(image.convert("RGB"))
    faces = face_detector().detect(pixels)
    face = select_face(faces, options.face_index, where=where)
    if len(faces) > 1:
        print(f"{where}: {len(faces)} faces found; cropping index {options.face_index} (largest first)")
    return FaceCrop.from_landmarks(face.landmarks, *pixels.shape[:2], size=options.size, margin=options.margin)


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
