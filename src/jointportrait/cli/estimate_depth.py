"""``jointportrait estimate-depth``: photo(s) -> relative depth, colour map and normals (paper Sec. 5.3).

Outputs per image ``<stem>``: ``<stem>_depth.npy`` (float32, [0, 1], 0 = near),
``<stem>_depth.png`` (16-bit), ``<stem>_depth_color.png``, ``<stem>_normals.png`` and, with
``--ensemble N > 1``, ``<stem>_uncertainty.npy``. The option helpers here are shared with
``edit``, ``relight`` and ``export``, which estimate depth the same way when none is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.common import (
    add_camera_arguments,
    add_model_arguments,
    add_sampling_arguments,
    camera_depth,
    camera_from_args,
    check_outputs_free,
    check_sampling_arguments,
    collect_files,
    companion_file,
    generator_for,
    load_pipeline,
    log_inpaint_mode,
    run_batch,
)
from jointportrait.errors import InputError
from jointportrait.io import depth_output_paths, save_depth_outputs


def add_estimation_arguments(parser: argparse.ArgumentParser) -> None:
    """Depth-estimation options (also used by ``edit``, ``relight`` and ``export``)."""
    parser.add_argument("--ensemble", type=int, default=1, help="samples merged by aligned per-pixel median")
    parser.add_argument("--resize-mode", default="resize", choices=("resize", "pad"),
                        help="reach a multiple of 8 by resizing or by padding (outputs are at the input size)")
    parser.add_argument("--timestep-spacing", default="trailing", choices=("trailing", "leading", "linspace"),
                        help="scheduler timestep spacing for depth estimation")
    add_sampling_arguments(parser)


def check_estimation_arguments(args: argparse.Namespace) -> None:
    if args.ensemble < 1:
        raise InputError(f"--ensemble must be >= 1, got {args.ensemble}")
    check_sampling_arguments(args)


def depth_for_image(pipe, image, args: argparse.Namespace, reference=None):
    """The estimate (:class:`DepthEstimate`) of a PIL image under the estimation options."""
    from jointportrait.applications.depth_estimation import estimate_depth

    return estimate_depth(
        pipe, image, reference=reference, num_inference_steps=args.steps, ensemble_size=args.ensemble,
        processing_resolution=args.processing_resolution, resize_mode=args.resize_mode,
        spacing=args.timestep_spacing, inpaint_mode=args.inpaint_mode, generator=generator_for(args),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="photo, or a folder of photos")
    parser.add_argument("--reference", type=Path, default=None,
                        help="identity reference (file, or folder matched by name; default: the photo itself)")
    add_model_arguments(parser, steps=10)
    add_estimation_arguments(parser)
    add_camera_arguments(parser, depth_files=False)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from jointportrait.applications.normals import normals_from_depth, normals_to_image
    from jointportrait.io import IMAGE_SUFFIXES, check_writable, load_image, save_depth_npy

    check_estimation_arguments(args)
    files = collect_files(args.image)
    pipe = load_pipeline(args)
    log_inpaint_mode(pipe, args.inpaint_mode)
    args.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        normals_path, uncertainty_path = args.out / f"{path.stem}_normals.png", args.out / f"{path.stem}_uncertainty.npy"
        check_outputs_free([*depth_output_paths(args.out, path.stem).values(), normals_path]
                           + ([uncertainty_path] if args.ensemble > 1 else []), args.overwrite)
        image = load_image(path)
        ref_path = companion_file(args.reference, path.stem, "reference image", IMAGE_SUFFIXES)
        result = depth_for_image(pipe, image, args, reference=load_image(ref_path) if ref_path else None)
        save_depth_outputs(args.out, path.stem, result.depth, args.overwrite)
        z, valid = camera_depth(result.depth, args, metric=False)
        normals = normals_from_depth(z, valid=valid, **camera_from_args(args, image.height, image.width))
        Image.fromarray(normals_to_image(normals)).save(check_writable(normals_path, args.overwrite))
        if result.uncertainty is not None:
            save_depth_npy(uncertainty_path, result.uncertainty.astype(np.float32), overwrite=args.overwrite)

    return run_batch(files, process, "estimate-depth", args.out)
