"""``jointportrait create``: write a joint model folder (paper Sec. 3.3: widened UNet + ReferenceNet), or a
video model folder (Sec. 5.5: the same plus ``motion_adapter/``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.errors import InputError, OutputExistsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--base-model", type=Path, metavar="PATH",
                     help="SD 1.5 folder in diffusers layout, a single-file .safetensors checkpoint, or "
                          "'shipped': the small pretrained face base that comes with the package")
    src.add_argument("--tiny", action="store_true", help="a small random model with the same layout")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tiny model's random weights")
    parser.add_argument("--with-image-encoder", action="store_true", help="tiny model: add a tiny CLIP image encoder")
    parser.add_argument("--image-encoder", metavar="PATH|none", default=None,
                        help="--base-model: a local CLIPVisionModelWithProjection folder whose embedding of the "
                             "reference conditions cross-attention; 'none' for the null embedding by choice "
                             "(default: the base's image_encoder/ if it has one, else the null embedding, "
                             "with a warning)")
    parser.add_argument("--video", action="store_true",
                        help="a video model: add a new motion adapter whose output is zero (it starts as the "
                             "image model)")
    parser.add_argument("--motion-adapter", type=Path, metavar="PATH", default=None,
                        help="a video model with this motion adapter: a MotionAdapter folder or an AnimateDiff "
                             "motion checkpoint (.ckpt / .safetensors)")
    parser.add_argument("--zero-motion-output", action="store_true",
                        help="with --motion-adapter: zero its output layers, so the video model starts as the "
                             "image model")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")


def run(args: argparse.Namespace) -> int:
    from jointportrait.loading import create_joint_model, create_tiny_joint_model

    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise OutputExistsError(f"{args.out}: folder is not empty (pass --overwrite to write into it)")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"{args.out}: exists and is not a folder")
    if args.tiny and args.image_encoder is not None:
        raise InputError("--image-encoder goes with --base-model (a tiny model takes --with-image-encoder)")
    if args.zero_motion_output and args.motion_adapter is None:
        raise InputError("--zero-motion-output goes with --motion-adapter (a new adapter's output is zero)")
    video = dict(video=args.video, motion_adapter=args.motion_adapter, zero_motion=args.zero_motion_output)
    if args.tiny:
        pipe = create_tiny_joint_model(args.out, seed=args.seed, with_image_encoder=args.with_image_encoder, **video)
    else:
        pipe = create_joint_model(args.base_model, args.out, image_encoder=args.image_encoder, **video)
    n_unet = sum(p.numel() for p in pipe.unet.parameters())
    n_ref = sum(p.numel() for p in pipe.reference_unet.parameters())
    embedding = "CLIP image embedding" if pipe.image_encoder is not None else "null embedding (no image encoder)"
    motion = ""
    if hasattr(pipe, "motion_adapter"):
        motion = f"; motion modules {sum(p.numel() for p in pipe.motion_adapter.parameters()):,}"
    print(f"wrote {args.out} (denoiser {n_unet:,} parameters, {pipe.unet.config.in_channels} input channels; "
          f"ReferenceNet {n_ref:,}{motion}; cross-attention: {embedding})")
    return 0
