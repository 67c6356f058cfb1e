"""``jointportrait generate``: reference image(s) -> RGB + depth samples (paper Sec. 3.2, Fig. 1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.face_crop import crop_image, face_crop
from jointportrait.cli.inputs import collect_files
from jointportrait.cli.options import ModelOptions, OutputOptions
from jointportrait.cli.pipeline import load_pipeline
from jointportrait.cli.writers import check_outputs_free, depth_output_paths, save_depth_outputs
from jointportrait.errors import JointPortraitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, required=True, help="reference image, or a folder of them")
    ModelOptions.add_arguments(parser)
    OutputOptions.add_arguments(parser)
    parser.add_argument("--num-samples", type=int, default=1, help="samples per reference")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="reference guidance (1 = off)")
    parser.add_argument("--size", type=int, default=None, help="output size in pixels (multiple of 8)")


def run(args: argparse.Namespace) -> int:
    from jointportrait.io import load_image, save_image

    if args.num_samples < 1:
        raise JointPortraitError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.size is not None and (args.size <= 0 or args.size % 8):
        raise JointPortraitError(f"--size must be a positive multiple of 8, got {args.size}")
    model, output = ModelOptions.from_args(args), OutputOptions.from_args(args)
    files = collect_files(args.reference)
    pipe = load_pipeline(model)
    output.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        stems = [f"{path.stem}_{i:02d}" for i in range(args.num_samples)]
        check_outputs_free(
            [output.out / f"{s}.png" for s in stems]
            + [p for s in stems for p in depth_output_paths(output.out, s).values()],
            output.overwrite,
        )
        reference = load_image(path)
        crop = face_crop(model.face_crop, reference, str(path))
        if crop is not None:  # the identity reference as the training data frames it; samples are crops
            reference = crop_image(crop, reference)
        result = pipe(reference, num_images_per_reference=args.num_samples, num_inference_steps=model.steps,
                      guidance_scale=args.guidance_scale, height=args.size, width=args.size,
                      generator=model.generator())
        for stem, image, depth in zip(stems, result.images, result.depths):
            save_image(output.out / f"{stem}.png", image, overwrite=output.overwrite)
            save_depth_outputs(output.out, stem, depth, output.overwrite)

    return run_batch(files, process, "generate", output.out)
