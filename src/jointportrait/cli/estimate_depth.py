"""``jointportrait estimate-depth``: photo(s) -> relative depth, colour map and normals (paper Sec. 5.3).

Outputs per image ``<stem>``: ``<stem>_depth.npy`` (float32, [0, 1], 0 = near),
``<stem>_depth.png`` (16-bit), ``<stem>_depth_color.png``, ``<stem>_normals.png`` and, with
``--ensemble N > 1``, ``<stem>_uncertainty.npy``; with ``--face-crop`` all at the photo's size, depth NaN
(16-bit PNG 0, colour map black) outside the face crop. ``edit``, ``relight`` and ``export`` estimate
depth the same way when none is given (:mod:`jointportrait.cli.pipeline`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.inputs import collect_files, companion_file
from jointportrait.cli.options import CameraOptions, EstimationOptions, ModelOptions, OutputOptions
from jointportrait.cli.pipeline import estimate_with_options, load_pipeline
from jointportrait.cli.writers import (
    check_outputs_free,
    depth_output_paths,
    save_depth_outputs,
    save_normals_image,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="photo, or a folder of photos")
    parser.add_argument("--reference", type=Path, default=None,
                        help="identity reference (file, or folder matched by name; default: the photo itself)")
    ModelOptions.add_arguments(parser, steps=10)
    OutputOptions.add_arguments(parser)
    EstimationOptions.add_arguments(parser)
    CameraOptions.add_arguments(parser, depth_files=False)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jointportrait.geometry.normals import normals_from_depth
    from jointportrait.io import IMAGE_SUFFIXES, load_image, save_depth_npy

    model, output = ModelOptions.from_args(args), OutputOptions.from_args(args)
    estimation, camera = EstimationOptions.from_args(args), CameraOptions.from_args(args)
    files = collect_files(args.image)
    pipe = load_pipeline(model, estimation.sampling)
    output.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        normals_path = output.out / f"{path.stem}_normals.png"
        uncertainty_path = output.out / f"{path.stem}_uncertainty.npy"
        check_outputs_free([*depth_output_paths(output.out, path.stem).values(), normals_path]
                           + ([uncertainty_path] if estimation.ensemble > 1 else []), output.overwrite)
        image = load_image(path)
        ref_path = companion_file(args.reference, path.stem, "reference image", IMAGE_SUFFIXES)
        result = estimate_with_options(pipe, image, model, estimation,
                                       reference=load_image(ref_path) if ref_path else None, where=str(path))
        save_depth_outputs(output.out, path.stem, result.depth, output.overwrite)
        z, valid = camera.camera_depth(result.depth, metric=False)
        normals = normals_from_depth(z, valid=valid, **camera.backprojection(image.height, image.width))
        save_normals_image(normals_path, normals, output.overwrite)
        if result.uncertainty is not None:
            save_depth_npy(uncertainty_path, result.uncertainty.astype(np.float32), overwrite=output.overwrite)

    return run_batch(files, process, "estimate-depth", output.out)
