"""``jointportrait track``: video -> 68-point landmarks (detected, or from a file) -> fitted face model, pseudo
ground-truth depth and a ``manifest.jsonl`` (source = wild) that the training datasets read (paper Sec. 5.1,
supplementary 7.3).

Without ``--landmarks`` the landmarks are detected in every frame (the
``faces`` extra), one face is followed through the clip (``--face-index``)
and the track is smoothed; frames without that face are reported and left
out. ``--face-crop`` writes square face crops (the rule of
:mod:`jointportrait.faces.crop`) with depth rendered into them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.detection import (
    add_detection_arguments,
    clip_landmarks,
    frames_list,
    no_face_message,
)
from jointportrait.cli.options import add_face_model_argument

SPLITS = ("train", "val", "test")
LANDMARKS_FILE = "landmarks.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, required=True, help="video file or folder of .png/.jpg frames")
    parser.add_argument("--landmarks", type=Path, default=None,
                        help="68-point landmarks per frame from your own detector, in pixels: .npy (F, 68, 2) "
                             "or .json; all-NaN frames have no face (default: detect them, needs the faces "
                             "extra)")
    parser.add_argument("--out", type=Path, required=True, help="output dataset folder")
    add_face_model_argument(parser)
    parser.add_argument("--subject", default=None, help="subject id (default: the video's name)")
    parser.add_argument("--clip", default=None, help="clip id (default: <subject>_c00)")
    parser.add_argument("--split", default="train", choices=SPLITS, help="dataset split of the clip")
    add_detection_arguments(parser)
    parser.add_argument("--face-crop", action="store_true",
                        help="write square face crops of --crop-size (the training data's crop rule) instead "
                             "of whole frames")
    parser.add_argument("--crop-size", type=int, default=512, help="side of the face crops in pixels")
    parser.add_argument("--face-margin", type=float, default=1.0, help="scale of the face crop's side")
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
    from jointportrait.faces import NoFaceError
    from jointportrait.tracking.crops import render_crops
    from jointportrait.tracking.export import output_paths, write_clip
    from jointportrait.tracking.landmarks import save_landmarks
    from jointportrait.tracking.stages import TrackerConfig
    from jointportrait.tracking.tracker import track_clip
    from jointportrait.tracking.video import read_frames

    if args.size < 16:
        raise InputError(f"--size must be at least 16, got {args.size}")
    if args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    if args.face_crop and args.crop_size < 16:
        raise InputError(f"--crop-size must be at least 16, got {args.crop_size}")
    frames, fps = read_frames(args.video)
    subject = args.subject or args.video.stem
    clip = args.clip or f"{subject}_c00"
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"{args.out}: exists and is not a folder")
    paths = [*output_paths(args.out, clip, range(frames.shape[0])), args.out / LANDMARKS_FILE]
    found_any = [p for p in paths if p.exists()]
    if found_any and not args.overwrite:  # before detection and the fit; nothing is created until it converged
        raise OutputExistsError(f"{found_any[0]}: exists already (pass --overwrite to replace it)")
    lmk = clip_landmarks(args, frames, fps)
    kept = np.flatnonzero(lmk.found)
    if kept.size == 0:
        raise NoFaceError(no_face_message(args.video, lmk, "frames", args.face_index))
    if lmk.missing:
        print(f"no face in {len(lmk.missing)} of {frames.shape[0]} frames (skipped): {frames_list(lmk.missing)}")
    model = load_face_model(args.face_model)
    print(f"tracking {kept.size} frames of {frames.shape[2]}x{frames.shape[1]} with the {model.name} model "
          f"({model.source})")
    config = TrackerConfig(photometric=not args.no_photometric, shared_identity=not args.per_frame_identity,
                           photometric_size=args.size)
    tracked = frames[kept]
    result = track_clip(model, tracked, lmk.landmarks[kept], config,
                        progress=lambda desc, total: tqdm(desc=desc, total=total, unit="step"))
    if result.diverged is not None:
        raise JointPortraitError(f"{args.video}: the fit diverged ({result.diverged}); nothing was written")
    crops = (render_crops(model, result.params, tracked, result.fitted_landmarks, args.crop_size, args.face_margin)
             if args.face_crop else None)
    source = str(args.landmarks) if args.landmarks is not None else f"detected (dlib {args.detector})"
    records = write_clip(args.out, tracked, result, subject=subject, clip=clip, split=args.split, fps=fps,
                         config=config, face_model=model.name, overwrite=args.overwrite, frame_ids=kept,
                         crops=crops, summary_extra={"landmarks": source, "skipped_frames": lmk.missing,
                                                     "video_frames": int(frames.shape[0])})
    save_landmarks(args.out / LANDMARKS_FILE, lmk, overwrite=args.overwrite, source=source, fps=fps)
    print(f"wrote {len(records)} frames to {args.out} (mean landmark error "
          f"{float(np.mean(result.landmark_error)):.2f} px, focal {result.intrinsics()[0, 0]:.1f} px"
          + (f", {args.crop_size} px face crops" if crops is not None else "") + ")")
    return 0
