"""``jointportrait synth``: synthetic studio images or clips with exact depth (paper Sec. 5.1, supp. 7.3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.options import add_face_model_argument
from jointportrait.errors import InputError, OutputExistsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder (new or empty)")
    parser.add_argument("--subjects", type=int, default=8, help="number of subjects (random identities)")
    parser.add_argument("--frames-per-subject", type=int, default=6, help="frames per subject")
    parser.add_argument("--size", type=int, default=512, help="image size in pixels (square)")
    parser.add_argument("--video", action="store_true", help="write clips with smooth motion at 25 fps")
    parser.add_argument("--clip-length", type=int, default=18, help="frames per clip with --video (14 + 4 motion)")
    add_face_model_argument(parser)
    parser.add_argument("--face-crop", action="store_true",
                        help="frame every image as the square face crop that track --face-crop and the "
                             "--face-crop option of the image commands use (rendered into the crop, no resampling)")
    parser.add_argument("--face-margin", type=float, default=1.0, help="scale of the face crop's side")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (the renderer's tensors are small: 1 is usually fastest)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from jointportrait.data.synth import SynthConfig, write_dataset
    from jointportrait.face_models import load_face_model

    for name in ("subjects", "frames_per_subject", "clip_length", "threads"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.face_margin <= 0:
        raise InputError(f"--face-margin must be positive, got {args.face_margin}")
    if args.size < 16 or args.size % 8:
        raise InputError(f"--size must be a multiple of 8 and >= 16, got {args.size}")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"{args.out}: exists and is not a folder")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise OutputExistsError(f"{args.out}: folder is not empty (pass --overwrite to write into it)")
    torch.set_num_threads(args.threads)
    model = load_face_model(args.face_model)
    print(f"face model: {model.name} ({model.source})")
    config = SynthConfig(subjects=args.subjects, frames_per_subject=args.frames_per_subject, size=args.size,
                         video=args.video, clip_length=args.clip_length, seed=args.seed, face_crop=args.face_crop,
                         face_margin=args.face_margin)
    total = args.subjects * args.frames_per_subject
    with tqdm(total=total, desc="rendering", unit="frame") as bar:
        n = write_dataset(args.out, model, config, progress=bar.update)
    print(f"wrote {n} frames of {args.subjects} subjects to {args.out} (manifest.jsonl)")
    return 0
