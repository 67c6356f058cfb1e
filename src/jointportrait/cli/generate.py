"""``jointportrait generate``: reference image(s) -> RGB + depth samples (paper Sec. 3.2, Fig. 1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.common import (
    add_model_arguments,
    check_outputs_free,
    collect_files,
    generator_for,
    load_pipeline,
    run_batch,
)
from jointportrait.errors import JointPortraitError
from jointportrait.io import depth_output_paths, save_depth_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, required=True, help="reference image, or a folder of them")
    add_model_arguments(parser)
    parser.add_argument("--num-samples", type=int, default=1, help="samples per reference")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="reference guidance (1 = off)")
    parser.add_argument("--size", type=int, default=None, help="output size in pixels (multiple of 8)")


def run(args: argparse.Namespace) -> int:
    from jointportrait.io import load_image, save_image

    if args.num_samples < 1:
        raise JointPortraitError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.size is not None and (args.size <= 0 or args.size % 8):
        raise JointPortraitError(f"--size must be a positive multiple of 8, got {args.size}")
    files = collect_files(args.reference)
    pipe = load_pipeline(args)
    args.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        stems = [f"{path.stem}_{i:02d}" for i in range(args.num_samples)]
        check_outputs_free(
            [args.out / f"{s}.png" for s in stems]
            + [p for s in stems for p in depth_output_paths(args.out, s).values()],
            args.overwrite,
        )
        reference = load_image(path)
        result = pipe(reference, num_images_per_reference=args.num_samples, num_inference_steps=args.steps,
                      guidance_scale=args.guidance_scale, height=args.size, width=args.size,
                      generator=generator_for(args))
        for stem, image, depth in zip(stems, result.images, result.depths):
            save_image(args.out / f"{stem}.png", image, overwrite=args.overwrite)
            save_depth_outputs(args.out, stem, depth, args.overwrite)

    return run_batch(files, process, "generate", args.out)
