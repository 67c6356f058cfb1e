"""``jointportrait estimate-depth``: photo(s) -> relative depth, colour map and normals (paper Sec. 5.3).

Outputs per image ``<stem>``: ``<stem>_depth.npy`` (float32, [0, 1], 0 = near),
``<stem>_depth.png`` (16-bit), ``<stem>_depth_color.png``, ``<stem>_normals.png`` and, with
``--ensemble N > 1``, ``<stem>_uncertainty.npy``; with ``--face-crop`` all at the photo's size, depth NaN
(16-bit PNG 0, colour map black) outside the face crop. A folder is estimated ``--batch-size`` photos per model
call (:class:`~jointportrait.cli.pipeline.BatchedEstimates`). ``edit``, ``relight`` and ``export`` estimate
depth the same way when none is given (:mod:`jointportrait.cli.pipeline`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.inputs import collect_files, companion_file
from jointportrait.cli.options import (
    BatchOptions,
    CameraOptions,
    EstimationOptions,
    ModelOptions,
    OutputOptions,
)
from jointportrait.cli.pipeline import BatchedEstimates, load_pipeline
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
    BatchOptions.add_arguments(parser)
    CameraOptions.add_arguments(parser, depth_files=False)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jointportrait.geometry.normals import normals_from_depth
    from jointportrait.io import IMAGE_SUFFIXES, load_image, save_depth_npy

    model, output = ModelOptions.from_args(args), OutputOptions.from_args(args)
    estimation, camera = EstimationOptions.from_args(args), CameraOptions.from_args(args)
    batch = BatchOptions.from_args(args)
    files = collect_files(args.image)
    pipe = load_pipeline(model, estimation.sampling)
    output.out.mkdir(parents=True, exist_ok=True)

    def load(path: Path):
        """The photo and its reference, once its outputs are known to be free (before any work)."""
        check_outputs_free([*depth_output_paths(output.out, path.stem).values(),
                            output.out / f"{path.stem}_normals.png"]
                           + ([output.out / f"{path.stem}_uncertainty.npy"] if estimation.ensemble > 1 else []),
                           output.overwrite)
        ref_path = companion_file(args.reference, path.stem, "reference image", IMAGE_SUFFIXES)
        return load_image(path), load_image(ref_path) if ref_path else None

    estimates = BatchedEstimates(pipe, files, load, model, estimation, batch.batch_size)

    def process(path: Path) -> None:
        normals_path = output.out / f"{path.stem}_normals.png"
        uncertainty_path = output.out / f"{path.stem}_uncertainty.npy"
        image, result = estimates(path)
        save_depth_outputs(output.out, path.stem, result.depth, output.overwrite)
        z, valid = camera.camera_depth(result.depth, metric=False)
        normals = normals_from_depth(z, valid=valid, **camera.backprojection(image.height, image.width))
        save_normals_image(normals_path, normals, output.overwrite)
        if result.uncertainty is not None:
            save_depth_npy(uncertainty_path, result.uncertainty.astype(np.float32), overwrite=output.overwrite)

    return run_batch(files, process, "estimate-depth", output.out)
