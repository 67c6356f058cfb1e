"""``jointportrait animate``: reference image + driving depth -> a video of RGB and depth (paper Sec. 5.5).

The driving source (``--driving``) is a folder of depth maps, a video file or frame folder
(depth estimated per frame with the same model: cross reenactment) or a folder written by
``jointportrait track`` (depth rendered with the reference person's identity from
``--reference-track`` and the driver's expression and pose: retargeting); see
:mod:`jointportrait.applications.animation`. Any number of frames, clip by clip with
motion frames. Writes ``OUT/frames/NNNN_rgb.png``, ``OUT/frames/NNNN_depth.npy``,
``OUT/animation.mp4`` (RGB and coloured depth side by side) and ``OUT/run.json``
(arguments, seed, timings, seam score).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from jointportrait.cli.options import ModelOptions, OutputOptions, add_face_model_argument
from jointportrait.cli.writers import check_outputs_free
from jointportrait.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, required=True, help="the identity: one portrait image")
    parser.add_argument("--driving", type=Path, required=True,
                        help="folder of depth maps (.npy / 16-bit .png, sorted by name), video file or frame "
                             "folder (depth estimated per frame), or a folder written by jointportrait track")
    ModelOptions.add_arguments(parser, steps=25)
    OutputOptions.add_arguments(parser)
    parser.add_argument("--num-frames", type=int, default=None, help="frames to make (default: all of the source)")
    parser.add_argument("--clip-length", type=int, default=14, help="frames generated at once (paper: 14)")
    parser.add_argument("--motion-frames", type=int, default=4,
                        help="frames of the previous clip each clip attends to (paper: 4; 0 = none)")
    parser.add_argument("--independent-clips", action="store_true",
                        help="every clip starts afresh from the reference (no motion frames from the previous "
                             "clip): for comparison")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of animation.mp4")
    parser.add_argument("--size", type=int, default=None, help="output size in pixels (default: the model's)")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="reference guidance (1 = off)")
    parser.add_argument("--reference-track", type=Path, default=None,
                        help="with a track folder as --driving: the reference person's track folder, whose "
                             "identity shapes the rendered depth (default: the driver's own)")
    add_face_model_argument(parser)
    parser.add_argument("--estimation-steps", type=int, default=1,
                        help="denoising steps per frame when the depth of a driving video is estimated")


def _check(args: argparse.Namespace) -> None:
    for name, value, low in (("--num-frames", args.num_frames, 1), ("--clip-length", args.clip_length, 1),
                             ("--motion-frames", args.motion_frames, 0), ("--estimation-steps",
                                                                          args.estimation_steps, 1)):
        if value is not None and value < low:
            raise InputError(f"{name} must be >= {low}, got {value}")
    if args.motion_frames > args.clip_length:
        raise InputError(f"--motion-frames ({args.motion_frames}) must not exceed --clip-length ({args.clip_length}): "
                         "they are the previous clip's last frames")
    if args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    if args.size is not None and (args.size <= 0 or args.size % 8):
        raise InputError(f"--size must be a positive multiple of 8, got {args.size}")
    if args.guidance_scale < 1.0:
        raise InputError(f"--guidance-scale must be >= 1, got {args.guidance_scale}")
    if not args.reference.is_file():
        raise InputError(f"--reference {args.reference}: no such image file")


def _finite(value):
    """JSON has no NaN: an undefined score is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(args: argparse.Namespace) -> int:
    import torch
    from diffusers.utils import logging as diffusers_logging
    from tqdm import tqdm

    from jointportrait.applications.animation import (
        animate,
        animation_paths,
        driving_kind,
        load_driving,
        write_animation,
    )
    from jointportrait.io import load_image
    from jointportrait.loading import load_video_pipeline

    _check(args)
    model, output = ModelOptions.from_args(args), OutputOptions.from_args(args)
    kind = driving_kind(args.driving)
    reference = load_image(args.reference)
    diffusers_logging.disable_progress_bar()  # the command's own bars and one-line errors stay readable
    timings = {}
    start = time.perf_counter()
    pipe = load_video_pipeline(model.model, device=model.torch_device(), dtype=model.torch_dtype())
    timings["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    with tqdm(desc="driving depth", unit="frame", disable=kind != "video") as bar:
        driving = load_driving(args.driving, num_frames=args.num_frames, image_pipe_factory=pipe.image_pipeline,
                               reference_track=args.reference_track, face_model=args.face_model,
                               estimation_steps=args.estimation_steps, generator=model.generator(),
                               progress=lambda done: bar.update(done - bar.n))
    timings["driving_s"] = time.perf_counter() - start
    check_outputs_free([*animation_paths(output.out, len(driving)), output.out / "run.json"], output.overwrite)

    with tqdm(total=len(driving), desc="animate", unit="frame") as bar:
        try:
            result = animate(pipe, reference, driving, clip_length=args.clip_length,
                             motion_frames=args.motion_frames, num_inference_steps=model.steps,
                             guidance_scale=args.guidance_scale, size=args.size,
                             independent_clips=args.independent_clips, generator=model.generator(),
                             on_clip_end=lambda clip, done: bar.update(done - bar.n))
        except ValueError as exc:  # the pipeline's check_inputs names the argument
            raise InputError(str(exc).replace("`", "")) from None
    timings["animate_s"] = result.seconds
    timings["seconds_per_frame"] = result.seconds / len(driving)

    start = time.perf_counter()
    video_path = write_animation(output.out, result, args.fps, overwrite=output.overwrite).video
    timings["write_s"] = time.perf_counter() - start

    record = {
        "command": "animate",
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                      if not k.startswith("_") and k != "command"},
        "seed": model.seed,
        "model": str(model.model),
        "model_channels": pipe.unet.config.in_channels,
        "driving": {"kind": driving.kind, "frames": len(driving), "fps": driving.fps, **driving.notes},
        "frames": len(driving),
        "size": int(result.images.shape[1]),
        "clip_starts": result.clip_starts,
        "seam": {k: _finite(v) for k, v in result.seam.as_dict().items()},
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "video": video_path.name,
        "torch": torch.__version__,
    }
    (output.out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    seam = result.seam.score
    print(f"wrote {len(driving)} frames in {len(result.clip_starts)} clips to {output.out} "
          f"({video_path.name}; {timings['seconds_per_frame']:.2f} s/frame; "
          f"seam score {'n/a' if not math.isfinite(seam) else f'{seam:.3f}'})")
    return 0
