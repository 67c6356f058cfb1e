"""Face detection as ``track`` and ``landmarks`` run it: the options, the landmarks of a clip (read from
``--landmarks`` or detected, followed and smoothed) and the messages about frames without a face."""

from __future__ import annotations

import argparse


def add_detection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--face-index --detector --no-smoothing`` (shared with ``jointportrait landmarks``)."""
    parser.add_argument("--face-index", type=int, default=0,
                        help="which face when there are several: 0 = the largest (in a video: in the first "
                             "frame where it is found; then that person is followed)")
    parser.add_argument("--detector", default="hog", choices=("hog", "cnn"),
                        help="face detector: hog (fast, frontal faces) or cnn (2-4 s a frame, any pose)")
    parser.add_argument("--no-smoothing", action="store_true",
                        help="keep the raw per-frame landmarks (default: zero-lag One Euro smoothing)")


def frames_list(frames: list[int], limit: int = 12) -> str:
    """``3, 17, 18`` (the first ``limit`` frame numbers, then ``... (N in all)``)."""
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f", ... ({len(frames)} in all)" if len(frames) > limit else "")


def no_face_message(where, lmk, what: str, face_index: int) -> str:
    """Why a clip (or a set of photos) gave no landmarks at all."""
    if face_index > 0 and any(lmk.face_counts):
        return (f"{where}: --face-index {face_index} asks for face {face_index + 1}, but no {what[:-1]} has more "
                f"than {max(lmk.face_counts)} face(s); nothing was written")
    return f"{where}: no face found in any of its {len(lmk.found)} {what}; nothing was written"


def clip_landmarks(args: argparse.Namespace, frames, fps: float):
    """The clip's landmarks (:class:`~jointportrait.tracking.landmarks.ClipLandmarks`): read or detected."""
    import numpy as np
    from tqdm import tqdm

    from jointportrait.cli.face_crop import face_detector
    from jointportrait.faces import SmoothingConfig
    from jointportrait.tracking.landmarks import ClipLandmarks, detect_clip_landmarks, load_landmarks

    if getattr(args, "landmarks", None) is not None:
        landmarks = load_landmarks(args.landmarks, num_frames=frames.shape[0])
        return ClipLandmarks(landmarks, np.isfinite(landmarks).all(axis=(1, 2)))
    detector = face_detector(args.detector)
    with tqdm(total=len(frames), desc="detecting faces", unit="frame") as bar:
        return detect_clip_landmarks(frames, fps, detector, face_index=args.face_index,
                                     smoothing=None if args.no_smoothing else SmoothingConfig(),
                                     progress=bar.update)
