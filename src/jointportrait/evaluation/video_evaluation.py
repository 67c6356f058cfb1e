"""Table 3 over folders of clips: self and cross reenactment, image quality and the seam score (paper Sec. 5.5).

Inputs are folders with one sub-folder per clip, matched by name:

* ``pred`` (required): the generated clips. A clip folder holds its frames
  (images, in name order) or is an ``animate`` output folder (``frames/NNNN_rgb.png``
  and ``run.json``, whose ``clip_starts`` give the seam score's clip boundaries).
* ``gt``: ground-truth frames (self reenactment): per-frame L1, SSIM, LPIPS
  (:func:`~jointportrait.evaluation.video_metrics.clip_frame_metrics`) and FVD
  over non-overlapping 16-frame windows
  (:func:`~jointportrait.evaluation.video_metrics.fvd_over_windows`).
* ``driving``: the driving frames (cross reenactment): expression and pose
  error of tracker fits of both (:mod:`~jointportrait.evaluation.facial_motion`).
* ``reference``: one identity image ``<clip>.<ext>`` per clip for identity
  similarity (default: the ground-truth frames).

Without ground truth the clip, identity and quality metrics still run, so a
cross-reenactment folder needs only ``pred``, ``driving`` and ``reference``.
Identity similarity (ArcFace ONNX on five-point aligned faces, or dlib's
descriptor) and HyperIQA image quality (:mod:`~jointportrait.evaluation.hyperiqa`)
need their weights. Every metric that is not computed is listed in
:attr:`~jointportrait.evaluation.runner.EvaluationResult.omitted` with the
reason. Per-clip metrics are averaged over the clips that have them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from jointportrait.errors import InputError, MissingDependencyError, MissingPathError
from jointportrait.evaluation.facial_motion import FacialMotionFitter, motion_errors
from jointportrait.evaluation.hyperiqa import NUM_CROPS
from jointportrait.evaluation.identity import to_uint8
from jointportrait.evaluation.runner import EvaluationResult, _by_stem, _folder, _image_tensor, match_pairs
from jointportrait.evaluation.seams import seam_score
from jointportrait.evaluation.tables import METRIC_NAMES, TABLE_COLUMNS
from jointportrait.evaluation.video_metrics import (
    FVD_WINDOW,
    clip_frame_metrics,
    clip_identity_similarity,
    clip_windows,
    fvd_over_windows,
)
from jointportrait.io import IMAGE_SUFFIXES
from jointportrait.tracking.stages import TrackerConfig

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
IQA_BATCH = 4  # frames scored at once (x crops): bounds memory on long clips
I3D_BATCH = 4  # FVD windows through I3D at once

# the per-clip metrics, in Table 3's order (tables.TABLE_COLUMNS["video"])
METRICS = tuple(key for key, _ in TABLE_COLUMNS["video"])


@dataclass
class VideoEvaluationOptions:
    """Weights and settings of :func:`evaluate_video` (None: the metric is omitted with a reason)."""

    lpips_weights: Path | None = None
    lpips_net: str = "alex"
    lpips_backbone: Path | None = None
    i3d_weights: Path | None = None
    fvd_window: int = FVD_WINDOW
    identity_model: Path | None = None
    face_descriptor: bool = False
    iqa_weights: Path | None = None
    iqa_crops: int = NUM_CROPS
    clip_length: int | None = None  # seam score of frame folders: clips start every clip_length frames
    face_model: str | Path | None = None
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    detector: str = "hog"
    face_index: int = 0
    smoothing: bool = True
    device: torch.device | str = "cpu"
    progress: bool = False

    def check(self) -> None:
        for name, value in (("fvd_window", self.fvd_window), ("iqa_crops", self.iqa_crops)):
            if value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.clip_length is not None and self.clip_length < 1:
            raise InputError(f"--clip-length must be >= 1, got {self.clip_length}")


@dataclass
class ClipFiles:
    """The frame files of one clip (in order); ``clip_starts`` and ``fps`` from ``animate``'s run.json."""

    folder: Path
    files: list[Path]
    clip_starts: list[int] | None = None
    fps: float | None = None

    def __len__(self) -> int:
        return len(self.files)

    def size(self) -> tuple[int, int]:
        """(width, height) of the first frame, read from its header."""
        with Image.open(self.files[0]) as image:
            return image.size

    def load(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Frames ``(T, 3, H, W)`` in [0, 1]."""
        frames = [_image_tensor(p, device) for p in self.files]
        if any(f.shape != frames[0].shape for f in frames):
            raise InputError(f"{self.folder}: frames differ in size")
        return torch.cat(frames)


def clip_folders(root: Path, what: str) -> dict[str, Path]:
    """The sub-folders of ``root`` by name (one per clip)."""
    root = _folder(root, what)
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}
    if not folders:
        raise InputError(f"{root}: no clip folders found; expected {what}")
    return folders


def clip_files(folder: Path) -> ClipFiles:
    """The frames of a clip folder, or of an ``animate`` output folder (``frames/*_rgb.png`` + ``run.json``)."""
    run = folder / "run.json"
    if run.is_file() and (folder / "frames").is_dir():
        try:
            record = json.loads(run.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{run}: not a readable run record ({exc})") from None
        if not isinstance(record, dict):
            raise InputError(f"{run}: not a run record of jointportrait animate")
        files = sorted((folder / "frames").glob("*_rgb.png"))
        starts, fps = record.get("clip_starts"), (record.get("arguments") or {}).get("fps")
        if starts is not None and not (isinstance(starts, list) and all(isinstance(s, int) for s in starts)):
            raise InputError(f"{run}: clip_starts must be a list of frame numbers")
    else:
        files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        starts, fps = None, None
    if not files:
        raise InputError(f"{folder}: clip folder holds no frames")
    return ClipFiles(folder, files, starts, float(fps) if fps else None)


def _check_pairs(preds: dict[str, ClipFiles], others: dict[str, ClipFiles], what: str, same_size: bool) -> None:
    """Each clip of ``others`` has as many frames as its generated clip (and, with ``same_size``, their size)."""
    for name, pred in preds.items():
        other = others[name]
        if len(other) != len(pred):
            raise InputError(f"{other.folder}: {len(other)} {what} frames for {len(pred)} generated ones")
        if same_size and other.size() != pred.size():
            raise InputError(f"{pred.folder}: frames of {pred.size()[0]} x {pred.size()[1]} px differ from the "
                             f"{what} frames' {other.size()[0]} x {other.size()[1]} px")


def _identity_encoders(options: VideoEvaluationOptions, detector) -> tuple[dict[str, Any], list[str]]:
    """``{row key: encoder}`` and notes; ArcFace aligned by landmarks when a detector is at hand."""
    from jointportrait.evaluation.identity import DescriptorEncoder, FaceAligner, IdentityEncoder

    aligner = FaceAligner(detector) if detector is not None else None
    notes = []
    encoders: dict[str, Any] = {}
    if options.identity_model is not None:
        encoders["id_similarity"] = IdentityEncoder(options.identity_model, aligner=aligner)
        if aligner is None:
            notes.append("ArcFace sees whole resized frames, not aligned faces (the faces extra is not installed)")
    if options.face_descriptor:
        encoders["id_similarity_dlib"] = DescriptorEncoder(aligner)
    return encoders, notes


def _face_detector(options: VideoEvaluationOptions, needed: bool) -> tuple[Any, str | None]:
    """A face detector (the ``faces`` extra), or None and why there is none."""
    if not needed:
        return None, None
    from jointportrait.faces import FaceDetector

    try:
        return FaceDetector(options.detector), None
    except MissingDependencyError as exc:
        return None, str(exc)


def _image_quality(model, frames: torch.Tensor, crops: int) -> float:
    scores = [model.score(frames[i:i + IQA_BATCH], num_crops=crops) for i in range(0, frames.shape[0], IQA_BATCH)]
    return float(torch.cat(scores).mean())


def _seam(frames: torch.Tensor, starts: list[int] | None, clip_length: int | None) -> tuple[float | None, str | None]:
    """The seam score of frames ``(T, 3, H, W)`` made in clips starting at ``starts`` (else every ``clip_length``
    frames), or None and why not."""
    n = frames.shape[0]
    if starts is None and clip_length is not None:
        starts = list(range(0, n, clip_length))
    if starts is None:
        return None, "clip boundaries unknown"
    if len([s for s in starts if 0 < s < n]) == 0:
        return None, "a single generated clip"
    try:
        score = seam_score(frames.cpu().numpy(), starts)
    except ValueError as exc:
        raise InputError(f"clip starts {starts}: {exc}") from None
    return (score.score, None) if np.isfinite(score.score) else (None, "no change inside the clips")


def _mean(rows: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    """Mean of each metric over the rows that have it, and how many rows that is."""
    mean, counts = {}, {}
    for key in METRICS:
        values = [r[key] for r in rows if key in r]
        if values:
            mean[key], counts[key] = float(np.mean(values)), len(values)
    return mean, counts


@dataclass
class _Inputs:
    """The clips to score, by name, and the identity references (checked before any metric runs)."""

    names: list[str]
    preds: dict[str, ClipFiles]
    gts: dict[str, ClipFiles] | None
    drivings: dict[str, ClipFiles] | None
    refs: dict[str, Path] | None


def _inputs(pred_dir: Path, gt_dir: Path | None, driving_dir: Path | None, reference_dir: Path | None) -> _Inputs:
    pred_folders = clip_folders(pred_dir, "one folder of frames per generated clip")
    names = sorted(pred_folders)
    preds = {name: clip_files(pred_folders[name]) for name in names}

    def paired(root: Path | None, what: str) -> dict[str, ClipFiles] | None:
        if root is None:
            return None
        folders = clip_folders(root, f"one folder of {what} frames per clip")
        match_pairs(pred_folders, folders, Path(pred_dir), Path(root))
        clips = {name: clip_files(folders[name]) for name in names}
        _check_pairs(preds, clips, what, same_size=what == "ground-truth")
        return clips

    gts, drivings, refs = paired(gt_dir, "ground-truth"), paired(driving_dir, "driving"), None
    if reference_dir is not None:
        refs = _by_stem(_folder(reference_dir, "reference images <clip>.png"), IMAGE_SUFFIXES)
        missing = [n for n in names if n not in refs]
        if missing:
            raise MissingPathError(f"{reference_dir}: no reference image for clip {missing[0]!r}")
    return _Inputs(names, preds, gts, drivings, refs)


@dataclass
class _Scorers:
    """The metric networks that have their inputs and weights; ``omitted``: metric -> why not."""

    lpips: Any = None
    i3d: Any = None
    identity: dict[str, Any] = field(default_factory=dict)
    iqa: Any = None
    motion: FacialMotionFitter | None = None
    omitted: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _scorers(inputs: _Inputs, options: VideoEvaluationOptions) -> _Scorers:
    from jointportrait.evaluation.hyperiqa import HyperIQA
    from jointportrait.evaluation.i3d import InceptionI3d
    from jointportrait.evaluation.lpips import LPIPS

    out, device = _Scorers(), options.device
    if inputs.gts is None:
        no_gt = "no --gt (ground-truth frames: self reenactment) given"
        out.omitted.update(l1=no_gt, ssim=no_gt, lpips=no_gt, fvd=no_gt)
    else:
        if options.lpips_weights is None:
            out.omitted["lpips"] = "no --lpips-weights given"
        else:
            out.lpips = LPIPS.from_file(options.lpips_weights, net=options.lpips_net,
                                        backbone=options.lpips_backbone).to(device)
        if options.i3d_weights is None:
            out.omitted["fvd"] = "no --i3d-weights given"
        else:
            out.i3d = InceptionI3d.from_file(options.i3d_weights).to(device)
    want_identity = options.identity_model is not None or options.face_descriptor
    detector, no_detector = _face_detector(options, want_identity or inputs.drivings is not None)
    if options.face_descriptor and detector is None:
        raise MissingDependencyError(no_detector)
    if not want_identity:
        out.omitted["id_similarity"] = "no --identity-model or --face-descriptor given"
    elif inputs.refs is None and inputs.gts is None:
        out.omitted["id_similarity"] = "no --reference images (or --gt frames) to compare identity with"
    else:
        out.identity, out.notes = _identity_encoders(options, detector)
    if options.iqa_weights is None:
        out.omitted["image_quality"] = "no --iqa-weights given (HyperIQA koniq_pretrained.pkl)"
    else:
        out.iqa = HyperIQA.from_file(options.iqa_weights).to(device)
    if inputs.drivings is None:
        out.omitted["expression_error"] = out.omitted["pose_error"] = "no --driving frames (cross reenactment) given"
    elif detector is None:
        out.omitted["expression_error"] = out.omitted["pose_error"] = f"no face detector: {no_detector}"
    else:
        from jointportrait.face_models import load_face_model

        out.motion = FacialMotionFitter(load_face_model(options.face_model), detector, options.tracker,
                                        smoothing=options.smoothing, face_index=options.face_index)
    return out


def _window_features(i3d, frames: torch.Tensor, window: int) -> np.ndarray:
    """I3D features ``(N, 400)`` of the non-overlapping windows of frames ``(T, 3, H, W)``, a few at a time."""
    windows = clip_windows(frames, window)  # (N, 3, window, H, W)
    feats = [i3d(windows[i:i + I3D_BATCH]).cpu().numpy() for i in range(0, windows.shape[0], I3D_BATCH)]
    return np.concatenate(feats) if feats else np.zeros((0, i3d.logits.conv3d.out_channels))


@dataclass
class _ClipScore:
    """One clip's row, its FVD window features and why a per-clip metric is missing."""

    row: dict[str, Any]
    pred_windows: np.ndarray | None = None
    gt_windows: np.ndarray | None = None
    seam_missing: str | None = None
    motion_missing: str | None = None


def _score_clip(name: str, inputs: _Inputs, scorers: _Scorers, options: VideoEvaluationOptions) -> _ClipScore:
    device = options.device
    x = inputs.preds[name].load(device)  # (T, 3, H, W)
    out = _ClipScore({"name": name, "frames": int(x.shape[0])})
    y = inputs.gts[name].load(device) if inputs.gts is not None else None
    if y is not None:
        out.row.update(clip_frame_metrics(x, y, scorers.lpips))
        if scorers.i3d is not None:
            out.pred_windows = _window_features(scorers.i3d, x, options.fvd_window)
            out.gt_windows = _window_features(scorers.i3d, y, options.fvd_window)
    if scorers.identity:
        ref = _image_tensor(inputs.refs[name], device) if inputs.refs is not None else y
        for key, encoder in scorers.identity.items():
            out.row[key] = clip_identity_similarity(encoder, x, ref)
    if scorers.iqa is not None:
        out.row["image_quality"] = _image_quality(scorers.iqa, x, options.iqa_crops)
    if scorers.motion is not None:
        fps = inputs.preds[name].fps or DEFAULT_FPS
        fits = {"generated": scorers.motion(np.stack(to_uint8(x)), fps),
                "driving": scorers.motion(np.stack(to_uint8(inputs.drivings[name].load(device))), fps)}
        errors = motion_errors(fits["generated"], fits["driving"])
        if errors is None:
            why = "; ".join(f"{side}: {fit.diverged}" for side, fit in fits.items() if fit.diverged)
            out.motion_missing = why or "no frame has a face in both"
        else:
            out.row.update(expression_error=errors.expression, pose_error=errors.pose_degrees,
                           motion_frames=errors.frames)
    seam, out.seam_missing = _seam(x, inputs.preds[name].clip_starts, options.clip_length)
    if seam is not None:
        out.row["seam_score"] = seam
    return out


def evaluate_video(pred_dir: Path, gt_dir: Path | None = None, driving_dir: Path | None = None,
                   reference_dir: Path | None = None,
                   options: VideoEvaluationOptions | None = None) -> EvaluationResult:
    """Table 3 over clip folders (module docstring)."""
    options = options or VideoEvaluationOptions()
    options.check()
    # 1. inputs, all checked before anything is computed
    inputs = _inputs(pred_dir, gt_dir, driving_dir, reference_dir)
    # 2. the metric networks that have their weights; the others are omitted with the reason
    scorers = _scorers(inputs, options)
    omitted, notes = scorers.omitted, scorers.notes
    # 3. per clip
    scores = [_score_clip(name, inputs, scorers, options)
              for name in tqdm(inputs.names, desc="video", disable=not options.progress)]
    rows = [s.row for s in scores]
    mean, counts = _mean(rows)
    # 4. FVD over the set, and what is missing where
    details: dict[str, Any] = {"clips_with_metric": counts}
    if scorers.i3d is not None:
        pred_feats = np.concatenate([s.pred_windows for s in scores])
        gt_feats = np.concatenate([s.gt_windows for s in scores])
        left_out = sum(r["frames"] for r in rows) - pred_feats.shape[0] * options.fvd_window
        if pred_feats.shape[0] < 2:
            omitted["fvd"] = (f"{pred_feats.shape[0]} window(s) of {options.fvd_window} frames in all clips; "
                              "FVD needs at least 2")
        else:
            result = fvd_over_windows(pred_feats, gt_feats)
            mean["fvd"] = result.value
            details["fvd"] = {**result.as_dict(), "window": options.fvd_window, "frames_left_out": left_out}
            notes.append(f"FVD over {result.windows} non-overlapping {options.fvd_window}-frame windows "
                         f"({left_out} frames at clip ends left out)")
            if result.warning:
                notes.append(result.warning)
    seam_missing = [(s.row["name"], s.seam_missing) for s in scores if s.seam_missing]
    if "seam_score" not in mean:
        whys = sorted({why for _, why in seam_missing})
        hint = (": evaluate animate output folders (their run.json) or give --clip-length"
                if "clip boundaries unknown" in whys else "")
        omitted["seam_score"] = "; ".join(whys) + hint
    elif seam_missing:
        notes.append(f"seam score over {counts['seam_score']} of {len(rows)} clips; none for "
                     + ", ".join(f"{name} ({why})" for name, why in seam_missing[:5]))
    if scorers.motion is not None:
        whys = ", ".join(f"{s.row['name']} ({s.motion_missing})" for s in scores if s.motion_missing)
        if "expression_error" not in mean:
            omitted["expression_error"] = omitted["pose_error"] = f"no usable face fit in any clip: {whys}"
        elif whys:
            notes.append(f"expression/pose over {counts['expression_error']} of {len(rows)} clips; none for {whys}")
    for aligner in {getattr(e, "aligner", None) for e in scorers.identity.values()} - {None}:
        if aligner.fallbacks:
            notes.append(f"no face detected in {aligner.fallbacks} of {aligner.images} images for ID similarity: "
                         "landmarks predicted in the crop rule's face box there")
    if "image_quality" in mean:
        notes.append("image quality: HyperIQA (the paper's text; its citation [69] is LIQE), mean of "
                     f"{options.iqa_crops} fixed 224 px crops per frame, KonIQ scale 0-100")
    for key in omitted:
        logger.info("%s omitted: %s", METRIC_NAMES[key], omitted[key])
    return EvaluationResult("video", rows, mean, notes=notes, omitted=omitted, details=details)
