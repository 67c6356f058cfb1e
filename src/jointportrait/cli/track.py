"""``jointportrait track``: video + 68-point landmarks -> fitted face model, pseudo ground-truth depth and a
``manifest.jsonl`` (source = wild) that the training datasets read (paper Sec. 5.1, supplementary 7.3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.options import add_face_model_argument

SPLITS = ("train", "val", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, required=True, help="video file or folder of .png/.jpg frames")
    parser.add_argument("--landmarks", type=Path, required=True,
                        help="68-point landmarks per frame in pixels: .npy (F, 68, 2) or .json")
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    add_face_model_argument(parser)
    parser.add_argument("--subject", default=None, help="subject id (default: the video's name)")
    parser.add_argument("--clip", default=None, help="clip id (default: <subject>_c00)")
    parser.add_argument("--split", default="train", choices=SPLITS, help="dataset split of the clip")
    parser.add_argument("--no-photometric", action="store_true", help="landmark fit only (faster, coarser)")
    parser.add_argument("--per-frame-identity", action="store_true",
                        help="fit one identity per frame instead of one per clip (less stable)")
    parser.add_argument("--size", type=int, default=256,
                        help="longest side of the finest photometric pyramid level")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from jointportrait.errors import InputError, JointPortraitError, OutputExistsError
    from jointportrait.face_models import load_face_model
    from jointportrait.tracking.export import output_paths, write_clip
    from jointportrait.tracking.landmarks import load_landmarks
    from jointportrait.tracking.stages import TrackerConfig
    from jointportrait.tracking.tracker import track_clip
    from jointportrait.tracking.video import read_frames

    if args.size < 16:
        raise InputError(f"--size must be at least 16, got {args.size}")
    frames, fps = read_frames(args.video)
    landmarks = load_landmarks(args.landmarks, num_frames=frames.shape[0])
    subject = args.subject or args.video.stem
    clip = args.clip or f"{subject}_c00"
    existing = [p for p in output_paths(args.out, clip, frames.shape[0]) if p.exists()]
    if existing and not args.overwrite:  # checked before the fit; nothing is created until it converged
        raise OutputExistsError(f"{existing[0]}: exists already (pass --overwrite to replace it)")
    model = load_face_model(args.face_model)
    print(f"tracking {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} with the {model.name} model "
          f"({model.source})")
    config = TrackerConfig(photometric=not args.no_photometric, shared_identity=not args.per_frame_identity,
                           photometric_size=args.size)
    result = track_clip(model, frames, landmarks, config,
                        progress=lambda desc, total: tqdm(desc=desc, total=total, unit="step"))
    if result.diverged is not None:
        raise JointPortraitError(f"{args.video}: the fit diverged ({result.diverged}); nothing was written")
    records = write_clip(args.out, frames, result, subject=subject, clip=clip, split=args.split, fps=fps,
                         config=config, face_model=model.name, overwrite=args.overwrite)
    print(f"wrote {len(records)} frames to {args.out} (mean landmark error "
          f"{float(np.mean(result.landmark_error)):.2f} px, focal {result.intrinsics()[0, 0]:.1f} px)")
    return 0
