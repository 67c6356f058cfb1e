"""Options and helpers shared by the commands that run a model on user files."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, MissingPathError
from jointportrait.io import IMAGE_SUFFIXES, check_writable, colorize_depth, save_depth_npy, save_depth_png16

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model --out --seed --device --dtype --steps --overwrite``."""
    parser.add_argument("--model", type=Path, required=True, help="joint model folder (jointportrait create / train)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="model weights dtype")
    parser.add_argument("--steps", type=int, default=20, help="number of denoising steps")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_pipeline(args: argparse.Namespace):
    """The pipeline of ``--model`` on ``--device`` in ``--dtype``, with a clear error for a bad device."""
    import torch

    from jointportrait.loading import load_joint_pipeline

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise InputError(f"--device: unknown device {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: CUDA was asked for but no GPU is available")
    if args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
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
