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

import imageio.v2 as imageio
import numpy as np
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
NPY_SIGNATURE = b"\x93NUMPY"
PNG16_MODES = ("I;16", "I;16B", "I;16L", "I")
# container -> test on the file's first 16 bytes (the driving video of the animation tab)
VIDEO_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "MP4": lambda head: head[4:8] == b"ftyp",  # MP4, MOV, M4V, 3GP (ISO base media)
    "WEBM": lambda head: head.startswith(b"\x1a\x45\xdf\xa3"),  # WebM, Matroska (EBML)
    "AVI": lambda head: head[:4] == b"RIFF" and head[8:12] == b"AVI ",
}


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
    format: str  # a key of IMAGE_SIGNATURES (or "NPY" for a depth map)
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


def upload_head(path: str | os.PathLike, limits: UploadLimits, what: str) -> bytes:
    """The first 16 bytes of an upload, after checking that it is readable, not empty and within the size limit."""
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
    return head


def check_image_upload(path: str | os.PathLike, limits: UploadLimits, what: str = "photo") -> ImageHeader:
    """Check an uploaded image without decoding its pixels; an :class:`InputError` naming ``what`` if refused."""
    path = Path(path)
    head = upload_head(path, limits, what)
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
    check_pixels(width, height, limits, what)
    return ImageHeader(fmt, width, height)


def check_pixels(width: int, height: int, limits: UploadLimits, what: str, max_pixels: int | None = None) -> None:
    """Refuse a size over ``max_pixels`` (default: the limits') or under the smallest side."""
    max_pixels = limits.max_pixels if max_pixels is None else max_pixels
    if width * height > max_pixels:
        raise InputError(f"{what}: {width} x {height} pixels is more than the limit of {max_pixels:,} "
                         "(refused before decoding)")
    if min(width, height) < limits.min_side:
        raise InputError(f"{what}: {width} x {height} pixels is too small; each side needs at least "
                         f"{limits.min_side} pixels")


def load_image_upload(path: str | os.PathLike, limits: UploadLimits, what: str = "photo") -> PIL.Image.Image:
    """:func:`check_image_upload`, then decode with :func:`jointportrait.io.load_image` (RGB, EXIF-rotated)."""
    check_image_upload(path, limits, what)
    try:
        return load_image(path, check_suffix=False)  # the type was checked by content above
    except JointPortraitError as exc:  # e.g. a truncated file: keep the reason, drop the server path
        raise InputError(str(exc).replace(str(path), what)) from None


# ---------------------------------------------------------------- the animation tab's driving uploads

DRIVING_KINDS = {"depth": "a depth map (.npy, 16-bit PNG)", "frame": "a frame (PNG, JPEG)",
                 "video": "a video (MP4/MOV, WebM/MKV, AVI)"}


def _npy_header(path: Path, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header (the data is not read)."""
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"version {version}")
    except (OSError, ValueError, SyntaxError):
        raise InputError(f"{what}: the file starts like a .npy array but its header is broken") from None
    return shape, dtype


def check_depth_upload(path: str | os.PathLike, limits: UploadLimits, what: str = "depth map") -> ImageHeader:
    """Check an uploaded depth map (a 2-D numeric ``.npy``, or a 16-bit PNG) without reading its pixels;
    the header's format is ``"NPY"`` or ``"PNG"``."""
    path = Path(path)
    head = upload_head(path, limits, what)
    if head.startswith(NPY_SIGNATURE):
        shape, dtype = _npy_header(path, what)
        if dtype.hasobject or dtype.kind not in "biuf":
            raise InputError(f"{what}: a depth map must hold numbers, this .npy holds {dtype}")
        if len(shape) != 2:
            raise InputError(f"{what}: a depth map must be one 2-D array, this .npy has shape {tuple(shape)}")
        height, width = shape
        check_pixels(width, height, limits, what)
        return ImageHeader("NPY", width, height)
    header = check_image_upload(path, limits, what)
    with PIL.Image.open(path, formats=[header.format]) as img:  # the header only
        mode = img.mode
    if header.format != "PNG" or mode not in PNG16_MODES:
        raise InputError(f"{what}: not a depth map: depth comes as .npy or 16-bit PNG (this is an 8-bit "
                         f"{header.format} image)")
    return header


def check_video_upload(path: str | os.PathLike, limits: UploadLimits, what: str = "video",
                       max_pixels: int | None = None) -> tuple[str, int, int]:
    """Check an uploaded video by its container's signature and its frame size (read from the header by
    ffmpeg, before any frame is decoded); returns (container, width, height)."""
    path = Path(path)
    head = upload_head(path, limits, what)
    container = next((name for name, matches in VIDEO_SIGNATURES.items() if matches(head)), None)
    if container is None:
        raise InputError(f"{what}: not {DRIVING_KINDS['video']} (the file's content was checked, not its name)")
    try:
        with imageio.get_reader(path, format="ffmpeg") as reader:
            width, height = reader.get_meta_data()["size"]
    except (OSError, RuntimeError, ValueError, IndexError, KeyError, TypeError):
        raise InputError(f"{what}: the file starts like a {container} video but ffmpeg cannot read it") from None
    check_pixels(int(width), int(height), limits, what, max_pixels)
    return container, int(width), int(height)


def driving_upload_kind(path: str | os.PathLike, limits: UploadLimits, what: str) -> str:
    """``"depth"``, ``"frame"`` or ``"video"``: what a driving upload holds, told by its content (a PNG is a depth
    map when it has 16 bits, a frame when it has 8)."""
    head = upload_head(path, limits, what)
    fmt = sniff_image_format(head)
    if head.startswith(NPY_SIGNATURE):
        return "depth"
    if fmt == "PNG":
        check_image_upload(path, limits, what)
        with PIL.Image.open(path, formats=["PNG"]) as img:  # the header only
            return "depth" if img.mode in PNG16_MODES else "frame"
    if fmt == "JPEG":
        return "frame"
    if fmt is None and any(matches(head) for matches in VIDEO_SIGNATURES.values()):
        return "video"
    raise InputError(f"{what}: not {', '.join(DRIVING_KINDS.values())} (the file's content was checked, not "
                     "its name)")
