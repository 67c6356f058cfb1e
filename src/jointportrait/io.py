"""Reading and writing images and depth maps as users have them (DESIGN.md, "Data on disk").

Images: JPEG/PNG/WebP/..., RGBA, grayscale, CMYK, 16-bit, EXIF-rotated; always
returned as RGB ``uint8`` after applying the EXIF orientation. Depth: float32
``.npy``, ``.exr`` or 16-bit PNG with a stated scale. Every reader raises
:class:`~jointportrait.errors.InputError` naming the file on bad input, and every
writer refuses to replace an existing file unless ``overwrite=True``.

Limits that protect the machine: an image or depth map of more than
:func:`max_image_pixels` pixels is refused from its header, before it is decoded
(a "decompression bomb" is a small file that claims 40000 x 40000 pixels); one
smaller than ``MIN_IMAGE_SIDE`` (images) or ``MIN_DEPTH_SIDE`` (depth) pixels a
side is refused as too small to process. A write that runs out of disk space
removes its partial file and raises :class:`~jointportrait.errors.DiskFullError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from jointportrait.errors import DiskFullError, InputError, MissingPathError, OutputExistsError, is_disk_full

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEPTH_SUFFIXES = (".npy", ".exr", ".png")
PNG16_MAX = 65535
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192  # 67 megapixels; raise with --max-pixels / JOINTPORTRAIT_MAX_PIXELS
MIN_IMAGE_SIDE = 8  # one latent pixel; anything smaller has no content to process
MIN_DEPTH_SIDE = 2  # normals take finite differences between neighbours
_EXR_MAGIC = b"\x76\x2f\x31\x01"


def _env_max_pixels() -> int:
    value = os.environ.get("JOINTPORTRAIT_MAX_PIXELS", "")
    try:
        return int(value) if value.strip() else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        raise InputError(f"JOINTPORTRAIT_MAX_PIXELS must be a whole number, got {value!r}") from None


_max_pixels: int | None = None  # set by set_max_image_pixels (the CLI's --max-pixels); None: environment/default


def max_image_pixels() -> int:
    """The largest pixel count an input image or depth map may have (``--max-pixels``)."""
    return _max_pixels if _max_pixels is not None else _env_max_pixels()


def set_max_image_pixels(pixels: int | None) -> None:
    """Set the input pixel limit for this process; None goes back to ``JOINTPORTRAIT_MAX_PIXELS`` or the default.

    PIL's own bomb check is kept at least as high, so that this limit decides.
    """
    global _max_pixels
    if pixels is not None and pixels < 1:
        raise InputError(f"--max-pixels must be >= 1, got {pixels}")
    _max_pixels = None if pixels is None else int(pixels)
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # PIL warns above this and refuses above twice this
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(limit)  # effective if cv2 is not loaded yet


os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must be set before cv2 loads
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_IMAGE_PIXELS))


def check_image_size(path: str | os.PathLike, width: int, height: int, min_side: int = MIN_IMAGE_SIDE,
                     what: str = "image") -> None:
    """Refuse a ``width`` x ``height`` input that is too large (before decoding) or too small to process."""
    limit = max_image_pixels()
    if width * height > limit:
        raise InputError(f"{path}: {what} has {width}x{height} = {width * height:,} pixels, more than the limit of "
                         f"{limit:,} (refused before decoding; raise it with --max-pixels if the file is genuine)")
    if min(width, height) < min_side:
        raise InputError(f"{path}: {what} is {width}x{height} pixels, too small to process "
                         f"(at least {min_side}x{min_side} needed)")


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: expected a file, found a directory")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    return path


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path, refusing to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists already (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _open_image(path: Path, min_side: int, what: str) -> Iterator[Image.Image]:
    """PIL's lazy open (header only), with the size checked before anything is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as exc:  # far above PIL's own limit: PIL refuses it first
            pixels = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
            raise InputError(f"{path}: {what} has {size}, more than the limit of {max_image_pixels():,} "
                             "(refused before decoding; raise it with --max-pixels if the file is genuine)") from None
        except MemoryError:
            raise
        except Exception as exc:  # decoders raise many types on damaged files (OSError, SyntaxError, struct.error)
            raise InputError(f"{path}: not a readable {what} ({_reason(exc)})"
                             ) from None
    with img:
        check_image_size(path, img.width, img.height, min_side, what)
        yield img


def load_image(path: str | os.PathLike, background: tuple[int, int, int] = (255, 255, 255),
               min_side: int = MIN_IMAGE_SIDE, check_suffix: bool = True) -> Image.Image:
    """Open an image file as an RGB PIL image, EXIF-rotated, alpha composited on ``background``.

    16-bit and float grayscale images are rescaled to 8 bits by their bit depth. The
    file name must end in one of ``IMAGE_SUFFIXES`` (the bytes decide the format) unless
    ``check_suffix`` is False (an upload whose type was checked by its content).
    """
    path = _existing_file(path)
    if check_suffix and path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"{path}: not an image file name (expected one of {', '.join(IMAGE_SUFFIXES)})")
    with _open_image(path, min_side, "image") as img:
        try:
            img.load()  # decodes fully, so truncated files fail here
            img = ImageOps.exif_transpose(img)
        except MemoryError:
            raise
        except Exception as exc:  # as above: any decoder error on a damaged file
            raise InputError(f"{path}: not a readable image ({_reason(exc)})"
                             ) from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = PNG16_MAX if arr.max() > 255 else 255
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        img = Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("RGB")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[Path]:
    """Write ``path`` inside this block; a full disk removes the partial file and raises :class:`DiskFullError`."""
    try:
        yield path
    except OSError as exc:
        if not is_disk_full(exc, path.parent):  # numpy reports a short write without an errno
            raise
        with contextlib.suppress(OSError):
            path.unlink()
        raise DiskFullError(f"{path}: no space left on device (the partial file was removed)") from None


def save_image(path: str | os.PathLike, image: Image.Image | np.ndarray, overwrite: bool = False) -> Path:
    """Write an image (PIL, or uint8/float-in-[0,1] array) to ``path``."""
    path = check_writable(path, overwrite)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        image = Image.fromarray(image)
    with writing(path):
        image.save(path)
    return path


def load_depth(path: str | os.PathLike, png_scale: float = 1.0 / PNG16_MAX, min_side: int = MIN_DEPTH_SIDE
               ) -> np.ndarray:
    """Load a depth map as float32 (H, W).

    ``.npy`` and ``.exr`` are read as stored; a 16-bit PNG is multiplied by
    ``png_scale`` (default: 0..65535 -> 0..1, the relative-depth previews this
    project writes). Raises :class:`InputError` for other layouts.
    """
    path = _existing_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            depth = _load_npy_checked(path, min_side)
        elif suffix == ".exr":
            import cv2

            with path.open("rb") as fh:
                if fh.read(4) != _EXR_MAGIC:
                    raise InputError(f"{path}: not an OpenEXR file (its first bytes are not the EXR signature)")
            depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if depth is None:
                raise InputError(f"{path}: OpenCV could not read this EXR file (damaged, or more than "
                                 f"{max_image_pixels():,} pixels)")
        elif suffix == ".png":
            with _open_image(path, min_side, "depth map") as img:
                if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
                    raise InputError(f"{path}: depth PNG must be 16-bit grayscale, found mode {img.mode}")
                img.load()
                depth = np.asarray(img, dtype=np.float64) * png_scale
        else:
            raise InputError(f"{path}: unsupported depth format (expected one of {', '.join(DEPTH_SUFFIXES)})")
    except MemoryError:
        raise
    except Exception as exc:  # numpy's header parser, OpenCV and PIL raise many types on damaged files
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable depth map ({_reason(exc)})"
                         ) from None
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[-1] in (1, 3, 4):
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.size == 0:
        raise InputError(f"{path}: depth must be a non-empty 2-D array, found shape {tuple(depth.shape)}")
    check_image_size(path, depth.shape[1], depth.shape[0], min_side, "depth map")
    if not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)
            or depth.dtype == np.bool_):
        raise InputError(f"{path}: depth must hold numbers, found dtype {depth.dtype}")
    return depth.astype(np.float32)


def _load_npy_checked(path: Path, min_side: int) -> np.ndarray:
    """A ``.npy`` array whose header (signature, dtype, shape) is checked before its data is read."""
    with path.open("rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise InputError(f"{path}: not a .npy file (its first bytes are not the NumPy signature)")
        fh.seek(0)
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version in read_header:
            shape, _, dtype = read_header[version](fh)
            if dtype.hasobject:
                raise InputError(f"{path}: holds Python objects (pickled data is never loaded); save a numeric "
                                 "array instead")
            if len(shape) in (2, 3):
                check_image_size(path, shape[1], shape[0], min_side, "depth map")
    return np.load(path, allow_pickle=False)


def save_depth_npy(path: str | os.PathLike, depth: np.ndarray, overwrite: bool = False) -> Path:
    path = check_writable(path, overwrite)
    with writing(path):
        np.save(path, np.asarray(depth, dtype=np.float32))
    return path


def save_depth_png16(
    path: str | os.PathLike,
    depth: np.ndarray,
    scale: float = 1.0 / PNG16_MAX,
    overwrite: bool = False,
) -> Path:
    """Write ``round(depth / scale)`` as a 16-bit PNG; the default maps [0, 1] to 0..65535.

    Non-finite values are written as 0 (the "no data" value of such files).
    """
    path = check_writable(path, overwrite)
    depth = np.asarray(depth, dtype=np.float64)
    codes = np.where(np.isfinite(depth), np.round(depth / scale), 0.0)
    with writing(path):
        Image.fromarray(np.clip(codes, 0, PNG16_MAX).astype(np.uint16)).save(path)
    return path


def depth_output_paths(out: str | os.PathLike, stem: str) -> dict[str, Path]:
    """The three files of a relative depth map ``<stem>``: ``.npy``, 16-bit PNG, colour map."""
    out = Path(out)
    return {
        "npy": out / f"{stem}_depth.npy",
        "png16": out / f"{stem}_depth.png",
        "color": out / f"{stem}_depth_color.png",
    }


def save_depth_outputs(out: str | os.PathLike, stem: str, depth: np.ndarray, overwrite: bool) -> dict[str, Path]:
    """Relative depth (H, W) in [0, 1] -> float32 .npy, 16-bit PNG, colour-mapped PNG (as the commands write them)."""
    paths = depth_output_paths(out, stem)
    save_depth_npy(paths["npy"], depth, overwrite=overwrite)
    save_depth_png16(paths["png16"], depth, overwrite=overwrite)
    save_image(paths["color"], colorize_depth(depth, lo=0.0, hi=1.0), overwrite=overwrite)
    return paths


def colorize_depth(depth: np.ndarray, mask: np.ndarray | None = None, lo: float | None = None,
                   hi: float | None = None) -> np.ndarray:
    """Colour-map a depth map to (H, W, 3) uint8 (near = warm, far = cool); pixels outside ``mask`` black."""
    import cv2

    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) if mask is None else (np.asarray(mask, bool) & np.isfinite(depth))
    if not valid.any():
        return np.zeros(depth.shape + (3,), np.uint8)
    lo = float(depth[valid].min()) if lo is None else lo
    hi = float(depth[valid].max()) if hi is None else hi
    norm = np.nan_to_num(np.clip((depth - lo) / max(hi - lo, 1e-12), 0.0, 1.0))
    codes = ((1.0 - norm) * 255.0 + 0.5).astype(np.uint8)  # near -> high code -> red in TURBO
    rgb = cv2.applyColorMap(codes, cv2.COLORMAP_TURBO)[..., ::-1].copy()
    rgb[~valid] = 0
    return rgb
