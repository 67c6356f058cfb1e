"""``jointportrait edit``: depth-based portrait editing (paper Sec. 5.4, Fig. 7).

Inputs per photo ``<stem>``: the edited depth (``--edited-depth``, relative or raw, larger =
farther) and a spatial mask (``--mask``, white = may change). Without ``--mask`` the mask is
where the edited depth differs from the original depth (``--depth``, or estimated by the
model as ``estimate-depth`` does). Output ``<stem>_edit.png``, identical to the photo outside the mask.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.face_crop import crop_image, crop_map, face_crop, paste_image
from jointportrait.cli.inputs import collect_files, companion_file, load_user_depth, load_user_mask
from jointportrait.cli.options import EstimationOptions, ModelOptions, OutputOptions
from jointportrait.cli.pipeline import estimate_with_options, load_pipeline
from jointportrait.cli.writers import check_outputs_free


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="photo, or a folder of photos")
    parser.add_argument("--edited-depth", type=Path, required=True,
                        help="edited depth map (file, or folder matched by name: <stem>.npy or <stem>_depth.npy)")
    parser.add_argument("--mask", type=Path, default=None,
                        help="region to change, white (file, or folder matched by name); default: where the "
                             "edited depth differs from the original")
    parser.add_argument("--depth", type=Path, default=None,
                        help="original depth (file or folder); default: estimated by the model")
    parser.add_argument("--reference", type=Path, default=None,
                        help="identity reference (file or folder); default: the photo itself")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="reference guidance (1 = off)")
    ModelOptions.add_arguments(parser)
    OutputOptions.add_arguments(parser)
    EstimationOptions.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointportrait.applications.editing import edit_with_depth, mask_from_depth_edit
    from jointportrait.io import DEPTH_SUFFIXES, IMAGE_SUFFIXES, load_image, save_image

    model, output, estimation = ModelOptions.from_args(args), OutputOptions.from_args(args), EstimationOptions.from_args(args)
    files = collect_files(args.image)
    pipe = load_pipeline(model, estimation.sampling)
    output.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        stem = path.stem
        out_path = output.out / f"{stem}_edit.png"
        check_outputs_free([out_path], output.overwrite)
        image = load_image(path)
        size = (image.height, image.width)
        crop = face_crop(model.face_crop, image, str(path))
        edited_path = companion_file(args.edited_depth, stem, "edited depth", DEPTH_SUFFIXES,
                                     (f"{stem}_depth", f"{stem}_edited"))
        edited = load_user_depth(edited_path, size, allow_nan=crop is not None)
        mask_path = companion_file(args.mask, stem, "mask", IMAGE_SUFFIXES, (f"{stem}_mask",))
        if mask_path is not None:
            mask = load_user_mask(mask_path, size)
        else:
            depth_path = companion_file(args.depth, stem, "depth", DEPTH_SUFFIXES, (f"{stem}_depth",))
            depth = (load_user_depth(depth_path, size, allow_nan=crop is not None) if depth_path
                     else estimate_with_options(pipe, image, model, estimation, where=str(path)).depth)
            mask = mask_from_depth_edit(depth, edited)
        ref_path = companion_file(args.reference, stem, "reference image", IMAGE_SUFFIXES)
        reference = load_image(ref_path) if ref_path else None
        work = image
        if crop is not None:  # the model edits the face crop; the result is pasted back over the photo
            work, edited, mask = crop_image(crop, image), crop_map(crop, edited, str(edited_path)), crop_map(crop, mask, "mask")
            if reference is not None:
                reference = crop_image(face_crop(model.face_crop, reference, str(ref_path)), reference)
        result = edit_with_depth(
            pipe, work, edited, mask, reference=reference,
            num_inference_steps=model.steps, guidance_scale=args.guidance_scale,
            processing_resolution=estimation.sampling.processing_resolution,
            inpaint_mode=estimation.sampling.inpaint_mode, generator=model.generator(),
        )
        save_image(out_path, result.image if crop is None else paste_image(crop, result.image, image),
                   overwrite=output.overwrite)

    return run_batch(files, process, "edit", output.out)
