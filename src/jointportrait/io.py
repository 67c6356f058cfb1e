"""Reading and writing images and depth maps as users have them (DESIGN.md, "Data on disk").

Images: JPEG/PNG/WebP/..., RGBA, grayscale, 16-bit, EXIF-rotated; always returned
as RGB ``uint8`` after applying the EXIF orientation. Depth: float32 ``.npy``,
``.exr`` or 16-bit PNG with a stated scale. Every reader raises
:class:`~jointportrait.errors.InputError` naming the file on bad input, and every
writer refuses to replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jointportrait.errors import InputError, MissingPathError, OutputExistsError

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must be set before cv2 loads

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEPTH_SUFFIXES = (".npy", ".exr", ".png")
PNG16_MAX = 65535


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


def load_image(path: str | os.PathLike, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Open an image file as an RGB PIL image, EXIF-rotated, alpha composited on ``background``.

    16-bit and float grayscale images are rescaled to 8 bits by their bit depth.
    """
    path = _existing_file(path)
    try:
        with Image.open(path) as img:
            img.load()  # decodes fully, so truncated files fail here
            img = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    if img.width == 0 or img.height == 0:
        raise InputError(f"{path}: image has zero size")
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


def save_image(path: str | os.PathLike, image: Image.Image | np.ndarray, overwrite: bool = False) -> Path:
    """Write an image (PIL, or uint8/float-in-[0,1] array) to ``path``."""
    path = check_writable(path, overwrite)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        image = Image.fromarray(image)
    image.save(path)
    return path


def load_depth(path: str | os.PathLike, png_scale: float = 1.0 / PNG16_MAX) -> np.ndarray:
    """Load a depth map as float32 (H, W).

    ``.npy`` and ``.exr`` are read as stored; a 16-bit PNG is multiplied by
    ``png_scale`` (default: 0..65535 -> 0..1, the relative-depth previews this
    project writes). Raises :class:`InputError` for other layouts.
    """
    path = _existing_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            depth = np.load(path, allow_pickle=False)
        elif suffix == ".exr":
            import cv2

            depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if depth is None:
                raise InputError(f"{path}: OpenCV could not read this EXR file")
        elif suffix == ".png":
            with Image.open(path) as img:
                img.load()
                if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
                    raise InputError(f"{path}: depth PNG must be 16-bit grayscale, found mode {img.mode}")
                depth = np.asarray(img, dtype=np.float64) * png_scale
        else:
            raise InputError(f"{path}: unsupported depth format (expected one of {', '.join(DEPTH_SUFFIXES)})")
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable depth map ({exc})") from None
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[-1] in (1, 3, 4):
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.size == 0:
        raise InputError(f"{path}: depth must be a non-empty 2-D array, found shape {tuple(depth.shape)}")
    return depth.astype(np.float32)


def save_depth_npy(path: str | os.PathLike, depth: np.ndarray, overwrite: bool = False) -> Path:
    path = check_writable(path, overwrite)
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
    Image.fromarray(colorize_depth(depth, lo=0.0, hi=1.0)).save(check_writable(paths["color"], overwrite))
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
