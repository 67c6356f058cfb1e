"""``jointportrait depth-to-image``: depth map(s) + identity reference -> portraits (paper Sec. 4, 5.4).

Depth files: float32 ``.npy``, ``.exr`` or 16-bit PNG, larger = farther (e.g. the
``<stem>_depth.npy`` written by ``estimate-depth``, or a rendered face model).
``--valid-mask`` (white = has depth) marks missing depth, which becomes the far plane. Outputs ``<stem>_image_NN.png``
at the depth map's size. With ``--face-crop`` the reference is cropped to its face; when the reference has
the depth's size (the photo the depth came from) the depth is cropped with the same box and the portraits
are pasted back into the reference photo.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.face_crop import crop_image, crop_map, face_crop, paste_image
from jointportrait.cli.inputs import collect_files, companion_file, load_user_depth, load_user_mask
from jointportrait.cli.options import ModelOptions, OutputOptions, SamplingOptions
from jointportrait.cli.pipeline import load_pipeline
from jointportrait.cli.writers import check_outputs_free
from jointportrait.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--depth", type=Path, required=True, help="depth map, or a folder of them")
    parser.add_argument("--reference", type=Path, required=True,
                        help="identity reference image (one file for all, or a folder matched by name)")
    parser.add_argument("--valid-mask", type=Path, default=None,
                        help="mask of pixels with depth (white), one file or a folder matched by name")
    ModelOptions.add_arguments(parser)
    OutputOptions.add_arguments(parser)
    parser.add_argument("--num-samples", type=int, default=1, help="portraits per depth map")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="reference guidance (1 = off)")
    SamplingOptions.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointportrait.applications.depth_to_image import depth_to_image
    from jointportrait.io import DEPTH_SUFFIXES, IMAGE_SUFFIXES, load_image, save_image

    if args.num_samples < 1:
        raise InputError(f"--num-samples must be >= 1, got {args.num_samples}")
    model, output, sampling = ModelOptions.from_args(args), OutputOptions.from_args(args), SamplingOptions.from_args(args)
    files = collect_files(args.depth, DEPTH_SUFFIXES, what="depth")
    pipe = load_pipeline(model, sampling)
    output.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        stem = path.stem.removesuffix("_depth")
        outputs = [output.out / f"{stem}_image_{i:02d}.png" for i in range(args.num_samples)]
        check_outputs_free(outputs, output.overwrite)
        depth = load_user_depth(path, allow_nan=model.face_crop.enabled)
        mask_path = companion_file(args.valid_mask, stem, "valid mask", IMAGE_SUFFIXES, (f"{stem}_mask",))
        valid = load_user_mask(mask_path, depth.shape) if mask_path else None
        ref_path = companion_file(args.reference, stem, "reference image", IMAGE_SUFFIXES)
        reference = frame = load_image(ref_path)
        crop = face_crop(model.face_crop, reference, str(ref_path))
        if crop is not None:
            reference = crop_image(crop, frame)
            if (frame.height, frame.width) == depth.shape:  # the photo of this depth: crop both the same way
                depth = crop_map(crop, depth, str(path))
                valid = crop_map(crop, valid, str(mask_path)) if valid is not None else None
            else:
                crop = None  # a depth of another frame: used whole, only the identity reference is cropped
        images = depth_to_image(
            pipe, depth, reference, depth_valid=valid, num_samples=args.num_samples,
            num_inference_steps=model.steps, guidance_scale=args.guidance_scale,
            processing_resolution=sampling.processing_resolution, inpaint_mode=sampling.inpaint_mode,
            generator=model.generator(),
        )
        for out_path, image in zip(outputs, images):
            save_image(out_path, image if crop is None else paste_image(crop, image, frame), overwrite=output.overwrite)

    return run_batch(files, process, "depth-to-image", output.out)
