"""``jointportrait track``: video -> 68-point landmarks (detected, or from a file) -> fitted face model, pseudo
ground-truth depth and a ``manifest.jsonl`` (source = wild) that the training datasets read (paper Sec. 5.1,
supplementary 7.3).

Without ``--landmarks`` the landmarks are detected in every frame (the
``faces`` extra), one face is followed through the clip (``--face-index``)
and the track is smoothed; frames without that face are reported and left
out. ``--face-crop`` writes square face crops (the rule of
:mod:`jointportrait.faces.crop`) with depth rendered into them.

``--clips DIR`` tracks a whole folder of clips (:mod:`jointportrait.cli.track_dataset`): ``--workers N``
processes on one machine, ``--shard i/n`` over machines, resumable; ``--merge`` gathers the shards into one
manifest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.detection import add_detection_arguments, clip_landmarks
from jointportrait.cli.options import add_face_model_argument
from jointportrait.cli.track_dataset import run_clips, run_merge
from jointportrait.cli.track_pipeline import (
    LANDMARKS_FILE,
    TrackOptions,
    landmark_source,
    resolve_device,
    track_frames,
)

SPLITS = ("train", "val", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="video file or folder of .png/.jpg frames (one clip)")
    source.add_argument("--clips", type=Path,
                        help="folder of clips (video files and/or folders of frames), tracked one by one into "
                             "OUT/clips/<name>/ and merged into OUT/manifest.jsonl (see --shard, --workers)")
    source.add_argument("--merge", action="store_true",
                        help="gather the finished shards of a --clips run in --out into OUT/manifest.jsonl")
    parser.add_argument("--landmarks", type=Path, default=None,
                        help="68-point landmarks per frame from your own detector, in pixels: .npy (F, 68, 2) "
                             "or .json; all-NaN frames have no face (default: detect them, needs the faces "
                             "extra). With --clips: a folder of <clip name>.npy/.json")
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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (with --clips: track done clips again)")
    parser.add_argument("--device", default="auto",
                        help="where the fit runs: cpu, cuda, cuda:1, ... (default auto: cuda when there is one); "
                             "all frames of a clip are one batched fit")
    scale = parser.add_argument_group("a folder of clips (--clips)")
    scale.add_argument("--shard", default=None, metavar="I/N",
                       help="track only shard I of N (0-based): the clips at positions I, I+N, I+2N, ... of the "
                            "name-sorted list, so N jobs of a scheduler array cover the folder with no "
                            "coordination; merge with --merge when all have finished (default 0/1, merged "
                            "at the end)")
    scale.add_argument("--workers", type=int, default=1,
                       help="clips tracked at once in separate processes on this machine (default 1)")
    scale.add_argument("--threads", type=int, default=None,
                       help="torch threads per worker (default: this machine's usable cores / --workers)")
    scale.add_argument("--retry-failed", action="store_true",
                       help="track again the clips an earlier run recorded as failed (default: skip them)")


def check_options(args: argparse.Namespace) -> None:
    from jointportrait.errors import InputError

    if args.size < 16:
        raise InputError(f"--size must be at least 16, got {args.size}")
    if args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    if args.face_crop and args.crop_size < 16:
        raise InputError(f"--crop-size must be at least 16, got {args.crop_size}")


def run(args: argparse.Namespace) -> int:
    from jointportrait.errors import InputError, OutputExistsError
    from jointportrait.tracking.export import output_paths
    from jointportrait.tracking.video import read_frames

    if args.merge:
        return run_merge(args)
    check_options(args)
    if args.clips is not None:
        return run_clips(args)
    for flag, value in (("--shard", args.shard), ("--threads", args.threads)):
        if value is not None:
            raise InputError(f"{flag} applies to a folder of clips (--clips), not to --video")
    if args.workers != 1 or args.retry_failed:
        raise InputError("--workers and --retry-failed apply to a folder of clips (--clips), not to --video")
    options = TrackOptions.from_args(args, resolve_device(args.device))
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
    summary = track_frames(options, frames, fps, lmk, args.out, name=str(args.video), subject=subject, clip=clip,
                           landmark_source=landmark_source(options, args.landmarks), overwrite=args.overwrite,
                           say=print, progress=True)
    print(f"wrote {summary['frames']} frames to {args.out} (mean landmark error "
          f"{summary['mean_landmark_error_px']:.2f} px, focal {summary['focal_px']:.1f} px"
          + (f", {args.crop_size} px face crops" if summary["crop_size"] else "") + ")")
    return 0
