"""One clip through the tracker as ``jointportrait track`` runs it: the per-clip options, the device, and
frames + landmarks -> fit -> the clip's dataset folder (paper Sec. 5.1, supplementary 7.3). Shared by
``track --video`` (:mod:`jointportrait.cli.track`) and the worker processes of ``track --clips``
(:mod:`jointportrait.cli.track_dataset`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from jointportrait.cli.detection import frames_list, no_face_message

LANDMARKS_FILE = "landmarks.json"


@dataclass(frozen=True)
class TrackOptions:
    """The per-clip settings of ``track`` (picklable: worker processes of ``--clips`` receive them)."""

    face_model: str | None = None
    photometric: bool = True
    per_frame_identity: bool = False
    size: int = 256
    face_crop: bool = False
    crop_size: int = 512
    face_margin: float = 1.0
    detector: str = "hog"
    face_index: int = 0
    no_smoothing: bool = False
    split: str = "train"
    device: str = "cpu"

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: str) -> TrackOptions:
        return cls(face_model=None if args.face_model is None else str(args.face_model),
                   photometric=not args.no_photometric, per_frame_identity=args.per_frame_identity, size=args.size,
                   face_crop=args.face_crop, crop_size=args.crop_size, face_margin=args.face_margin,
                   detector=args.detector, face_index=args.face_index, no_smoothing=args.no_smoothing,
                   split=args.split, device=device)

    def recorded(self) -> dict:
        """The options that shape a clip's outputs (not where it ran), as its done marker keeps them."""
        return {k: v for k, v in asdict(self).items() if k != "device"}

    def detection_args(self, landmarks: Path | None) -> argparse.Namespace:
        """What :func:`clip_landmarks` reads."""
        return argparse.Namespace(landmarks=landmarks, detector=self.detector, face_index=self.face_index,
                                  no_smoothing=self.no_smoothing)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; any other name is checked by torch."""
    import torch

    from jointportrait.errors import InputError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: torch sees no CUDA GPU on this machine")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: the tracker runs on cpu or cuda")
    return str(device)


def track_frames(options: TrackOptions, frames, fps: float, lmk, out: Path, *, name: str, subject: str, clip: str,
                 landmark_source: str, overwrite: bool, say: Callable[[str], object], progress: bool) -> dict:
    """Fit the clip's frames ``(F, H, W, 3)`` with their landmarks (a ``ClipLandmarks``) and write it to
    ``out``; returns a summary. A clip with no face or a diverged fit is a one-line error, nothing written."""
    import numpy as np
    from tqdm import tqdm

    from jointportrait.errors import JointPortraitError
    from jointportrait.face_models import load_face_model
    from jointportrait.faces import NoFaceError
    from jointportrait.tracking.crops import render_crops
    from jointportrait.tracking.export import write_clip
    from jointportrait.tracking.landmarks import save_landmarks
    from jointportrait.tracking.stages import TrackerConfig
    from jointportrait.tracking.tracker import track_clip

    kept = np.flatnonzero(lmk.found)
    if kept.size == 0:
        raise NoFaceError(no_face_message(name, lmk, "frames", options.face_index))
    if lmk.missing:
        say(f"no face in {len(lmk.missing)} of {frames.shape[0]} frames (skipped): {frames_list(lmk.missing)}")
    model = load_face_model(options.face_model)
    say(f"tracking {kept.size} frames of {frames.shape[2]}x{frames.shape[1]} with the {model.name} model "
        f"({model.source}) on {options.device}")
    config = TrackerConfig(photometric=options.photometric, shared_identity=not options.per_frame_identity,
                           photometric_size=options.size)
    tracked = frames[kept]
    bars = (lambda desc, total: tqdm(desc=desc, total=total, unit="step")) if progress else None
    fit_model = model if options.device == "cpu" else model.to(options.device)
    result = track_clip(fit_model, tracked, lmk.landmarks[kept], config, progress=bars)
    if result.diverged is not None:
        raise JointPortraitError(f"{name}: the fit diverged ({result.diverged}); nothing was written")
    crops = (render_crops(model, result.params, tracked, result.fitted_landmarks, options.crop_size,
                          options.face_margin) if options.face_crop else None)
    records = write_clip(out, tracked, result, subject=subject, clip=clip, split=options.split, fps=fps,
                         config=config, face_model=model.name, overwrite=overwrite, frame_ids=kept, crops=crops,
                         summary_extra={"landmarks": landmark_source, "skipped_frames": lmk.missing,
                                        "video_frames": int(frames.shape[0])})
    save_landmarks(out / LANDMARKS_FILE, lmk, overwrite=overwrite, source=landmark_source, fps=fps)
    return {"frames": len(records), "video_frames": int(frames.shape[0]), "skipped_frames": lmk.missing,
            "mean_landmark_error_px": round(float(np.mean(result.landmark_error)), 4),
            "focal_px": round(float(result.intrinsics()[0, 0]), 3),
            "crop_size": None if crops is None else options.crop_size}


def landmark_source(options: TrackOptions, landmarks: Path | None) -> str:
    return str(landmarks) if landmarks is not None else f"detected (dlib {options.detector})"
