"""``jointportrait relight``: photo(s) + depth -> normals, diffuse shading, relit image (paper Suppl. 8.2).

The depth is ``--depth`` (file or folder; relative [0, 1] as written by ``estimate-depth``
unless ``--metric-depth``) or estimated by ``--model``. Light: ``--light x,y,z`` (direction
toward the light; x right, y up, z toward the viewer) or ``--sh`` with 9 spherical-harmonics
coefficients. Outputs ``<stem>_relit.png``, ``<stem>_shading.png``, ``<stem>_normals.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.common import (
    add_camera_arguments,
    add_model_arguments,
    camera_depth,
    camera_from_args,
    check_outputs_free,
    collect_files,
    companion_file,
    load_pipeline,
    load_user_depth,
    log_inpaint_mode,
    run_batch,
)
from jointportrait.cli.estimate_depth import (
    add_estimation_arguments,
    check_estimation_arguments,
    depth_for_image,
)
from jointportrait.errors import InputError


def add_depth_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--depth`` (given) or ``--model`` (estimated), with the estimation and camera options."""
    parser.add_argument("--depth", type=Path, default=None,
                        help="depth map (file, or folder matched by name: <stem>.npy or <stem>_depth.npy); "
                             "default: estimated with --model")
    add_model_arguments(parser, model_required=False, steps=10)
    add_estimation_arguments(parser)
    add_camera_arguments(parser)


def depth_source(args: argparse.Namespace):
    """A function ``(path, image) -> (camera z, valid)`` for each input photo, and the pipeline if one is loaded."""
    from jointportrait.io import DEPTH_SUFFIXES

    if args.depth is None and args.model is None:
        raise InputError("give --depth (depth maps) or --model (to estimate them)")
    if args.depth is not None and args.face_crop:
        raise InputError("--face-crop applies to depth estimated with --model, not to given --depth maps")
    check_estimation_arguments(args)
    pipe = None
    if args.depth is None:
        pipe = load_pipeline(args)
        log_inpaint_mode(pipe, args.inpaint_mode)

    def depth_of(path: Path, image):
        size = (image.height, image.width)
        if pipe is not None:
            return camera_depth(depth_for_image(pipe, image, args, where=str(path)).depth, args, metric=False)
        file = companion_file(args.depth, path.stem, "depth", DEPTH_SUFFIXES, (f"{path.stem}_depth",))
        return camera_depth(load_user_depth(file, size), args, metric=args.metric_depth)

    return depth_of


def parse_floats(text: str, count: int, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise InputError(f"{option} must be {count} comma-separated numbers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="photo, or a folder of photos")
    add_depth_source_arguments(parser)
    light = parser.add_mutually_exclusive_group()
    light.add_argument("--light", default="-0.5,0.5,1", help="directional light: direction toward the light "
                       "x,y,z (x right, y up, z toward the viewer); write a leading minus as --light=-1,1,1")
    light.add_argument("--sh", default=None, help="9 spherical-harmonics lighting coefficients "
                       "L00,L1-1,L10,L11,L2-2,L2-1,L20,L21,L22 (instead of --light)")
    parser.add_argument("--intensity", type=float, default=1.0, help="directional light intensity")
    parser.add_argument("--ambient", type=float, default=0.3, help="ambient term added to the directional light")
    parser.add_argument("--mode", default="multiply", choices=("multiply", "ratio"),
                        help="multiply the photo by the new shading, or by new / estimated original shading")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from jointportrait.applications.normals import normals_from_depth, normals_to_image
    from jointportrait.applications.relight import relight_image
    from jointportrait.applications.shading import lambert_shading, sh_shading
    from jointportrait.io import check_writable, load_image, save_image

    light = parse_floats(args.light, 3, "--light")
    if not any(light):
        raise InputError("--light must not be the zero vector")
    sh = parse_floats(args.sh, 9, "--sh") if args.sh else None
    files = collect_files(args.image)
    depth_of = depth_source(args)
    args.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        names = {k: args.out / f"{path.stem}_{k}.png" for k in ("relit", "shading", "normals")}
        check_outputs_free(names.values(), args.overwrite)
        image = load_image(path)
        z, valid = depth_of(path, image)
        normals = normals_from_depth(z, valid=valid, **camera_from_args(args, image.height, image.width))
        if sh is not None:
            shading = sh_shading(normals, sh)
        else:
            shading = lambert_shading(normals, light, intensity=args.intensity, ambient=args.ambient)
        result = relight_image(np.asarray(image) / 255.0, normals, shading, mode=args.mode)
        save_image(names["relit"], result.image, overwrite=args.overwrite)
        save_image(names["shading"], np.clip(shading, 0.0, 1.0), overwrite=args.overwrite)
        Image.fromarray(normals_to_image(normals)).save(check_writable(names["normals"], args.overwrite))

    return run_batch(files, process, "relight", args.out)
