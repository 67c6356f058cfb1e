"""Options and helpers shared by the commands that run a model on user files."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, JointPortraitError, MissingPathError
from jointportrait.io import (
    IMAGE_SUFFIXES,
    check_writable,
    colorize_depth,
    load_depth,
    load_image,
    save_depth_npy,
    save_depth_png16,
)

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def add_model_arguments(parser: argparse.ArgumentParser, model_required: bool = True, steps: int = 20) -> None:
    """``--model --out --seed --device --dtype --steps --overwrite``."""
    parser.add_argument("--model", type=Path, required=model_required,
                        help="joint model folder (jointportrait create / train)"
                        + ("" if model_required else "; needed only when the depth is estimated"))
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="model weights dtype")
    parser.add_argument("--steps", type=int, default=steps, help="number of denoising steps")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def parse_device(name: str):
    """``--device`` as a ``torch.device``; an unknown name or a missing GPU is a one-line error."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: CUDA was asked for but no GPU is available")
    return device


def load_pipeline(args: argparse.Namespace):
    """The pipeline of ``--model`` on ``--device`` in ``--dtype``, with a clear error for a bad device."""

    from jointportrait.loading import load_joint_pipeline

    device = parse_device(args.device)
    if args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # the CLI's own bars and one-line errors stay readable
    return load_joint_pipeline(args.model, device=device, dtype=torch_dtype(args.dtype))


def collect_files(path: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES, what: str = "image") -> list[Path]:
    """A file, or the matching files of a folder (sorted); an error when there are none."""
    suffixes = tuple(s.lower() for s in suffixes)
    if not path.exists():
        raise MissingPathError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{path}: folder holds no {what} files ({', '.join(suffixes)})")
    return files


def depth_output_paths(out: Path, stem: str) -> dict[str, Path]:
    return {
        "npy": out / f"{stem}_depth.npy",
        "png16": out / f"{stem}_depth.png",
        "color": out / f"{stem}_depth_color.png",
    }


def check_outputs_free(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse before any work if an output exists (so nothing is half-overwritten)."""
    for p in paths:
        check_writable(p, overwrite)


def save_depth_outputs(out: Path, stem: str, depth: np.ndarray, overwrite: bool) -> dict[str, Path]:
    """Relative depth (H, W) in [0, 1] -> float32 .npy, 16-bit PNG, colour-mapped PNG."""
    from PIL import Image

    paths = depth_output_paths(out, stem)
    save_depth_npy(paths["npy"], depth, overwrite=overwrite)
    save_depth_png16(paths["png16"], depth, overwrite=overwrite)
    Image.fromarray(colorize_depth(depth, lo=0.0, hi=1.0)).save(check_writable(paths["color"], overwrite))
    return paths


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--processing-resolution --inpaint-mode`` for the channel-wise inpainting commands."""
    parser.add_argument("--processing-resolution", type=int, default=None,
                        help="longer side while sampling (default: the model's native size; 0 = input size)")
    parser.add_argument("--inpaint-mode", default="auto", choices=("auto", "conditioning", "replacement"),
                        help="auto: mask conditioning for an 18-channel model, training-free latent "
                             "replacement for an 8-channel one")


def check_sampling_arguments(args: argparse.Namespace) -> None:
    res = getattr(args, "processing_resolution", None)
    if res is not None and res < 0:
        raise InputError(f"--processing-resolution must be >= 0, got {res}")


def log_inpaint_mode(pipe, inpaint_mode: str) -> None:
    """Check ``--inpaint-mode`` against the loaded model and say when replacement is used automatically."""
    if inpaint_mode == "conditioning" and not pipe.is_inpainting_model:
        raise InputError("--inpaint-mode conditioning needs an 18-channel (stage-2) model; this one has 8")
    if inpaint_mode == "auto" and not pipe.is_inpainting_model:
        logger.warning("8-channel (stage-1) model: using training-free latent replacement for the known domain")


def generator_for(args: argparse.Namespace):
    """A CPU torch generator seeded with ``--seed`` (the same seed gives the same output on any device)."""
    import torch

    return torch.Generator("cpu").manual_seed(args.seed)


def companion_file(path: Path | None, stem: str, what: str, suffixes: Iterable[str],
                   extra_stems: Iterable[str] = ()) -> Path | None:
    """The file that goes with input ``stem``: ``path`` itself if a file, else ``path/<stem>.<suffix>``.

    ``extra_stems`` are further names tried in a folder (e.g. ``<stem>_depth`` as written by
    ``estimate-depth``). None when ``path`` is None.
    """
    if path is None:
        return None
    if not path.exists():
        raise MissingPathError(f"{path}: no such file or folder ({what})")
    if path.is_file():
        return path
    for name in (stem, *extra_stems):
        for suffix in suffixes:
            candidate = path / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    raise MissingPathError(f"{path}: no {what} for {stem!r} (looked for {stem}.* and {', '.join(extra_stems) or '-'})")


def load_user_depth(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A depth map from a user file; NaN/inf values or a size other than ``size`` (H, W) are errors."""
    depth = load_depth(path)
    if not np.isfinite(depth).all():
        raise InputError(f"{path}: depth contains NaN or infinite values; mark missing depth with 0 instead")
    if size is not None and depth.shape != tuple(size):
        raise InputError(f"{path}: depth is {depth.shape[1]}x{depth.shape[0]}, expected {size[1]}x{size[0]} "
                         "(the image's size)")
    return depth


def load_user_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A binary mask (white = True) of exactly ``size`` (H, W) from an image file."""
    mask = np.asarray(load_image(path).convert("L")) > 127
    if mask.shape != tuple(size):
        raise InputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, expected {size[1]}x{size[0]} "
                         "(the image's size)")
    return mask


def run_batch(files: list[Path], process: Callable[[Path], None], desc: str, out: Path) -> int:
    """Run ``process`` on every file with a progress bar; return the exit status.

    A single input re-raises its error (one line, exit 2 from ``main``). In a batch, a bad
    file is reported on stderr, naming the file, and the others are still processed; the
    status is then 1.
    """
    from tqdm import tqdm

    failures = 0
    for path in tqdm(files, desc=desc, unit="file", disable=len(files) < 2):
        try:
            process(path)
        except JointPortraitError as exc:
            if len(files) == 1:
                raise
            failures += 1
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            tqdm.write(f"error: {message}", file=sys.stderr)  # on a line of its own, not after the bar
    print(f"wrote {len(files) - failures} of {len(files)} inputs to {out}")
    return 1 if failures else 0


def add_camera_arguments(parser: argparse.ArgumentParser, depth_files: bool = True) -> None:
    """How depth becomes 3-D points (normals, relighting, export): field of view, intrinsics or orthographic.

    ``depth_files``: the command reads depth files, so ``--metric-depth`` says how to read them.
    """
    parser.add_argument("--fov", type=float, default=40.0,
                        help="horizontal field of view in degrees, when --intrinsics is not given")
    parser.add_argument("--intrinsics", default=None, help="fx,fy,cx,cy in pixels of the input image")
    parser.add_argument("--orthographic", action="store_true",
                        help="orthographic camera (covering what --fov sees at the subject distance)")
    if depth_files:
        parser.add_argument("--metric-depth", action="store_true",
                            help="given depth files hold camera z (larger = farther, <= 0 = missing) "
                                 "instead of relative depth in [0, 1]")
    parser.add_argument("--depth-range", type=float, default=0.3,
                        help="depth span of relative [0, 1] depth, in units of the subject distance")


def camera_from_args(args: argparse.Namespace, height: int, width: int) -> dict:
    """``{"intrinsics": K}`` or ``{"pixel_size": s}`` (keyword arguments of ``backproject``) from the options."""
    from jointportrait.applications.camera import intrinsics_from_fov, orthographic_pixel_size

    if not 0.0 < args.fov < 180.0:
        raise InputError(f"--fov must be in (0, 180) degrees, got {args.fov}")
    if args.orthographic:
        return {"pixel_size": orthographic_pixel_size(width, args.fov)}
    if args.intrinsics:
        try:
            fx, fy, cx, cy = (float(v) for v in args.intrinsics.split(","))
        except ValueError:
            raise InputError(f"--intrinsics must be four numbers fx,fy,cx,cy, got {args.intrinsics!r}") from None
        if fx <= 0 or fy <= 0:
            raise InputError(f"--intrinsics: focal lengths must be positive, got fx={fx}, fy={fy}")
        return {"intrinsics": np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])}
    return {"intrinsics": intrinsics_from_fov(height, width, args.fov)}


def camera_depth(depth: np.ndarray, args: argparse.Namespace, metric: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(camera z, valid)`` of a depth map: metric z as is (<= 0 missing), or relative depth placed by
    ``--depth-range`` at the subject distance."""
    from jointportrait.applications.camera import relative_to_camera_depth

    if metric:
        return depth.astype(np.float64), depth > 0
    if args.depth_range <= 0:
        raise InputError(f"--depth-range must be positive, got {args.depth_range}")
    return relative_to_camera_depth(depth, depth_range=args.depth_range), np.isfinite(depth)
