"""What an upload to the web demo may be: its size, its pixel count and its type, checked by content.

Every image a user sends is checked here BEFORE it is decoded: the file size on disk,
the format from the file's first bytes (its name and the browser's MIME type are
ignored), and the width and height read from the header, so a small file that claims
billions of pixels (a decompression bomb) is refused without allocating them. Only then
is it decoded by :func:`jointportrait.io.load_image` (EXIF rotation, alpha, 16-bit), the
loader every command uses. Messages name the upload (``"photo"``), never the server's
path of the temporary file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import PIL.Image

from jointportrait.errors import InputError, JointPortraitError
from jointportrait.io import load_image

# PIL format name -> test on the file's first 16 bytes. Only formats every browser shows.
IMAGE_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "PNG": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "JPEG": lambda head: head.startswith(b"\xff\xd8\xff"),
    "WEBP": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
}
ACCEPTED = "a PNG, JPEG or WebP image"


@dataclass(frozen=True)
class UploadLimits:
    """Per-upload limits (``jointportrait serve --max-upload-mb --max-pixels``)."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 25_000_000
    min_side: int = 16

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_pixels < 1 or self.min_side < 1:
            raise InputError(f"upload limits must be positive, got {self}")
        if PIL.Image.MAX_IMAGE_PIXELS is not None and self.max_pixels > PIL.Image.MAX_IMAGE_PIXELS:
            raise InputError(f"--max-pixels: at most {PIL.Image.MAX_IMAGE_PIXELS:,} (Pillow's own decoding limit), "
                             f"got {self.max_pixels:,}")


@dataclass(frozen=True)
class ImageHeader:
    format: str  # a key of IMAGE_SIGNATURES
    width: int
    height: int


def format_bytes(n: int) -> str:
    """``1536`` -> ``"2 kB"``, ``3 * 2**20`` -> ``"3.0 MB"`` (for messages)."""
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n / 1024:.0f} kB" if n >= 1024 else f"{n} bytes"


def sniff_image_format(head: bytes) -> str | None:
    """The format whose signature ``head`` (the first bytes of a file) carries, or None."""
    for name, matches in IMAGE_SIGNATURES.items():
        if matches(head):
            return name
    return None


def check_image_upload(path: str | os.PathLike, limits: UploadLimits, what: str = "photo") -> ImageHeader:
    """Check an uploaded image without decoding its pixels; an :class:`InputError` naming ``what`` if refused."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        raise InputError(f"{what}: the upload could not be read; please send it again") from None
    if size == 0:
        raise InputError(f"{what}: the file is empty")
    if size > limits.max_bytes:
        raise InputError(f"{what}: the file is {format_bytes(size)}; the limit is {format_bytes(limits.max_bytes)}")
    fmt = sniff_image_format(head)
    if fmt is None:
        raise InputError(f"{what}: not {ACCEPTED} (the file's content was checked, not its name)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)  # our own limit decides below
            with PIL.Image.open(path, formats=[fmt]) as img:  # reads the header only
                width, height = img.size
    except PIL.Image.DecompressionBombError:
        raise InputError(f"{what}: the image claims more pixels than the limit of {limits.max_pixels:,} "
                         "(refused before decoding)") from None
    except (OSError, SyntaxError, ValueError):
        raise InputError(f"{what}: the file starts like a {fmt} image but its header is broken") from None
    if width * height > limits.max_pixels:
        raise InputError(f"{what}: {width} x {height} pixels is more than the limit of {limits.max_pixels:,} "
                         "(refused before decoding)")
    if min(width, height) < limits.min_side:
        raise InputError(f"{what}: {width} x {height} pixels is too small; each side needs at least "
                         f"{limits.min_side} pixels")
    return ImageHeader(fmt, width, height)


def load_image_upload(path: str | os.PathLike, limits: UploadLimits, what: str = "photo") -> PIL.Image.Image:
    """:func:`check_image_upload`, then decode with :func:`jointportrait.io.load_image` (RGB, EXIF-rotated)."""
    check_image_upload(path, limits, what)
    try:
        return load_image(path, check_suffix=False)  # the type was checked by content above
    except JointPortraitError as exc:  # e.g. a truncated file: keep the reason, drop the server path
        raise InputError(str(exc).replace(str(path), what)) from None
