"""Depth-driven portrait animation (paper Sec. 5.5): where the driving depth comes from, and the video.

Three driving sources, told apart by what a path holds (:func:`driving_kind`):

- ``depth``: a folder of depth maps (``.npy`` float, or 16-bit PNG), one per frame, sorted by
  name, larger = farther, 0 = no depth (e.g. the ``*_depth.npy`` of ``estimate-depth``, or
  depth rendered from a face model);
- ``video``: a video file or a folder of ``.png``/``.jpg`` frames. Each frame's depth is
  estimated with the same model (its image pipeline, Sec. 5.3): cross reenactment, where the
  driver's face shape comes along with the expression and pose;
- ``track``: a folder written by ``jointportrait track`` (``params.npz``, ``track.json``).
  The depth is rendered from the fitted face model with the driver's expression and head
  pose and the reference person's identity (the shared identity of ``reference_track``, a
  ``track`` folder of the reference; without one, the driver's own): retargeting, so the
  driver's face shape does not leak into the reference's.

Frames that are not square are cut to their centred square. :func:`animate` runs the video
pipeline clip by clip and reports the seam score (:mod:`jointportrait.evaluation.seams`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.applications.sampling import native_resolution
from jointportrait.data.manifest import MANIFEST_NAME
from jointportrait.errors import InputError, MissingPathError
from jointportrait.evaluation.seams import SeamScore, seam_score
from jointportrait.face_models import FACE_MODELS, FaceModel, load_face_model
from jointportrait.io import colorize_depth, load_depth, save_depth_npy, save_image
from jointportrait.tracking.params import TrackParams
from jointportrait.tracking.tracker import render_fit
from jointportrait.tracking.video import DEFAULT_FPS, FRAME_SUFFIXES, read_frames, write_video

logger = logging.getLogger(__name__)

DRIVING_KINDS = ("depth", "video", "track")
DEPTH_FILE_SUFFIXES = (".npy", ".png")
TRACK_FILES = ("params.npz", "track.json")


@dataclass
class DrivingDepth:
    """Raw driving depth per frame (larger = farther) with its valid pixels; ``fps`` of the source."""

    depths: list[np.ndarray]  # (H, W) float32 each
    valid: list[np.ndarray]  # (H, W) bool each
    kind: str
    fps: float = DEFAULT_FPS
    notes: dict = field(default_factory=dict)  # what the source was made of (for run.json)

    def __len__(self) -> int:
        return len(self.depths)

    def first(self, num_frames: int | None) -> DrivingDepth:
        """The first ``num_frames`` frames (all when None); an error when the source has fewer."""
        if num_frames is None:
            return self
        if num_frames < 1 or num_frames > len(self):
            raise InputError(f"--num-frames {num_frames}: the driving source has {len(self)} frames")
        return replace(self, depths=self.depths[:num_frames], valid=self.valid[:num_frames])


def centre_square(array: np.ndarray) -> np.ndarray:
    """The centred ``s x s`` window of an ``(H, W, ...)`` array, ``s = min(H, W)``."""
    h, w = array.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return array[top:top + s, left:left + s]


def _is_16bit_png(path: Path) -> bool:
    with PIL.Image.open(path) as img:
        return img.mode in ("I;16", "I;16B", "I;16L", "I")


def driving_kind(path: str | Path) -> str:
    """``"track"`` for a ``track`` output folder, ``"depth"`` for a folder of ``.npy`` / 16-bit PNG depth maps,
    ``"video"`` for a video file or a folder of 8-bit frames."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such driving video, frame folder, depth folder or track folder")
    if path.is_file():
        return "video"
    if all((path / name).is_file() for name in TRACK_FILES):
        return "track"
    files = sorted(p for p in path.iterdir() if p.is_file())
    if any(p.suffix.lower() == ".npy" for p in files):
        return "depth"
    pngs = [p for p in files if p.suffix.lower() == ".png"]
    if pngs and _is_16bit_png(pngs[0]):
        return "depth"
    if any(p.suffix.lower() in FRAME_SUFFIXES for p in files):
        return "video"
    raise InputError(f"{path}: holds no depth maps (.npy, 16-bit .png), frames (.png, .jpg) or track output "
                     f"({', '.join(TRACK_FILES)})")


def load_depth_folder(path: str | Path, num_frames: int | None = None) -> DrivingDepth:
    """Depth maps of a folder, sorted by name (``.npy`` as stored; 16-bit PNG scaled to [0, 1]); 0, NaN and
    inf are no depth."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in DEPTH_FILE_SUFFIXES)
    if not files:
        raise InputError(f"{path}: no depth maps (.npy or 16-bit .png)")
    files = files[:num_frames] if num_frames is not None else files
    depths, valid = [], []
    for f in files:
        d = load_depth(f)
        if d.ndim != 2:
            raise InputError(f"{f}: a depth map must be one 2-D array, got shape {d.shape}")
        d = centre_square(d)
        ok = np.isfinite(d) & (d > 0)
        depths.append(np.where(ok, d, 0.0).astype(np.float32))
        valid.append(ok)
    if len({d.shape for d in depths}) != 1:
        raise InputError(f"{path}: depth maps differ in size")
    return DrivingDepth(depths, valid, "depth", notes={"files": len(files)})


def estimate_driving_depth(image_pipe, path: str | Path, num_frames: int | None = None, steps: int = 1,
                           generator: torch.Generator | None = None,
                           progress: Callable[[int], None] | None = None) -> DrivingDepth:
    """The depth of every frame of a video or frame folder, estimated by ``image_pipe`` (the same model's
    image pipeline, Sec. 5.3; each frame is its own reference) at the model's native size."""
    frames, fps = read_frames(path, max_frames=num_frames)
    size = native_resolution(image_pipe)
    depths, valid = [], []
    for i, frame in enumerate(frames):
        image = PIL.Image.fromarray(centre_square(frame)).resize((size, size), PIL.Image.BICUBIC)
        estimate = estimate_depth(image_pipe, image, num_inference_steps=steps, generator=generator)
        depths.append(estimate.depth)  # relative depth in [0, 1]: all of it is depth
        valid.append(np.ones_like(estimate.depth, dtype=bool))
        if progress is not None:
            progress(i + 1)
    return DrivingDepth(depths, valid, "video", fps, notes={"depth_estimation_steps": steps})


def _track_params(folder: Path) -> tuple[TrackParams, dict]:
    for name in TRACK_FILES:
        if not (folder / name).is_file():
            raise MissingPathError(f"{folder}: no {name}; expected a folder written by jointportrait track")
    try:
        summary = json.loads((folder / "track.json").read_text())
        params = TrackParams.load(folder / "params.npz")
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{folder}: unreadable track output ({exc})") from None
    return params, summary


def _frame_size(folder: Path) -> tuple[int, int]:
    """(H, W) of a track folder's frames (its first image)."""
    first = json.loads((folder / MANIFEST_NAME).read_text().splitlines()[0])
    with PIL.Image.open(folder / first["image"]) as img:
        return img.height, img.width


def _tracked_face_model(recorded: str | None, spec: str | Path | None, where: Path) -> FaceModel:
    """The face model a track was fitted with: ``spec`` (a name or ``.npz`` path) when given, else the registered
    model whose name the track recorded; it must be the recorded one."""
    if spec is None:
        names = [n for n in FACE_MODELS if load_face_model(n).name == recorded]
        spec = names[0] if names else None
    model = load_face_model(spec)
    if recorded is not None and model.name != recorded:
        raise InputError(f"{where}: tracked with the {recorded} face model, not {model.name}; pass that model "
                         "with --face-model")
    return model


def retarget_track(path: str | Path, reference_track: str | Path | None = None,
                   face_model: str | Path | None = None, num_frames: int | None = None) -> DrivingDepth:
    """Depth rendered from a ``track`` folder: the driver's expression and head pose (and camera), the
    identity of ``reference_track`` (the reference person's ``track`` folder; default: the driver's own).
    ``face_model``: a registered name or ``.npz`` path (default: the one the track records)."""
    path = Path(path)
    params, summary = _track_params(path)
    model = _tracked_face_model(summary.get("face_model"), face_model, path)
    identity_from = "driver"
    if reference_track is not None:
        ref_params, ref_summary = _track_params(Path(reference_track))
        if ref_summary.get("face_model") != summary.get("face_model"):
            raise InputError(f"{reference_track}: tracked with another face model than {path}")
        params = replace(params, identity=ref_params.identity[:1].clone())
        identity_from = str(reference_track)
    else:
        logger.warning("no reference track: the driver's own face shape drives the video (pass the reference "
                       "person's track folder to retarget)")
    frames = params.num_frames if num_frames is None else min(num_frames, params.num_frames)
    params = replace(params, expression=params.expression[:frames], rotation=params.rotation[:frames],
                     translation=params.translation[:frames],
                     identity=params.identity if params.identity.shape[0] == 1 else params.identity[:frames])
    height, width = _frame_size(path)
    depth, mask, _, _ = render_fit(model, params, height, width)  # (F, H, W) camera z in cm, 0 outside
    return DrivingDepth([centre_square(d).astype(np.float32) for d in depth], [centre_square(m) for m in mask],
                        "track", float(summary.get("fps") or DEFAULT_FPS),
                        notes={"identity": identity_from, "face_model": model.name})


def load_driving(path: str | Path, *, num_frames: int | None = None, image_pipe_factory=None,
                 reference_track: str | Path | None = None, face_model: str | Path | None = None,
                 estimation_steps: int = 1, generator: torch.Generator | None = None,
                 progress: Callable[[int], None] | None = None) -> DrivingDepth:
    """The driving depth of ``path`` (see the module docstring); ``image_pipe_factory()`` gives the image
    pipeline that estimates a video's depth."""
    kind = driving_kind(path)
    if kind == "depth":
        driving = load_depth_folder(path, num_frames)
    elif kind == "track":
        driving = retarget_track(path, reference_track, face_model, num_frames)
    else:
        driving = estimate_driving_depth(image_pipe_factory(), path, num_frames, estimation_steps, generator,
                                         progress)
    if reference_track is not None and kind != "track":
        raise InputError("--reference-track goes with a driving folder written by jointportrait track")
    return driving.first(num_frames)


@dataclass
class Animation:
    """``images`` ``(N, H, W, 3)`` in [0, 1]; ``depths`` ``(N, H, W)`` relative depth in [0, 1] (0 = near)."""

    images: np.ndarray
    depths: np.ndarray
    clip_starts: list[int]
    seam: SeamScore
    seconds: float


def animate(pipe, reference: PIL.Image.Image, driving: DrivingDepth, *, clip_length: int = 14,
            motion_frames: int = 4, num_inference_steps: int = 25, guidance_scale: float = 1.0,
            size: int | None = None, independent_clips: bool = False, generator: torch.Generator | None = None,
            on_clip_end: Callable[[int, int], None] | None = None) -> Animation:
    """Animate ``reference`` with ``driving`` through a :class:`~jointportrait.pipelines.JointPortraitVideoPipeline`
    at ``size`` (default: the model's native size), clip by clip with motion frames."""
    size = native_resolution(pipe) if size is None else size
    start = time.perf_counter()
    out = pipe(reference, driving.depths, depth_valid=driving.valid, clip_length=clip_length,
               motion_frames=motion_frames, independent_clips=independent_clips,
               num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, height=size, width=size,
               generator=generator, output_type="np", on_clip_end=on_clip_end)
    seconds = time.perf_counter() - start
    seam = seam_score(out.images, out.clip_starts) if len(out.images) > 1 else SeamScore(
        float("nan"), float("nan"), float("nan"), 0)
    return Animation(out.images, out.depths, out.clip_starts, seam, seconds)


def rgb_frames(animation: Animation) -> np.ndarray:
    """The RGB frames ``(N, H, W, 3)`` as uint8 (what ``NNNN_rgb.png`` holds)."""
    return (np.clip(animation.images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def depth_frames(animation: Animation) -> np.ndarray:
    """The depth frames ``(N, H, W, 3)`` as uint8 colour maps (TURBO over [0, 1], near = warm)."""
    return np.stack([colorize_depth(depth, lo=0.0, hi=1.0) for depth in animation.depths])


@dataclass
class AnimationFiles:
    """What :func:`write_animation` wrote: ``frames/NNNN_rgb.png``, ``frames/NNNN_depth.npy`` and the video."""

    rgb: list[Path]
    depth: list[Path]
    video: Path  # animation.mp4 (animation.gif when libx264 is missing)


def animation_paths(out: Path, num_frames: int) -> list[Path]:
    """Every path :func:`write_animation` may write into ``out`` for ``num_frames`` frames."""
    paths = [out / "animation.mp4", out / "animation.gif"]
    for i in range(num_frames):
        paths += [out / "frames" / f"{i:04d}_rgb.png", out / "frames" / f"{i:04d}_depth.npy"]
    return paths


def write_animation(out: str | Path, animation: Animation, fps: float = DEFAULT_FPS,
                    overwrite: bool = False) -> AnimationFiles:
    """Write ``out/frames/NNNN_rgb.png``, ``out/frames/NNNN_depth.npy`` and ``out/animation.mp4`` (RGB and the
    colour-mapped depth side by side; ``.gif`` if libx264 is missing), as ``jointportrait animate`` does."""
    out = Path(out)
    frames_dir = out / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    rgb, colored = rgb_frames(animation), depth_frames(animation)
    rgb_paths, depth_paths = [], []
    for i, (image, depth) in enumerate(zip(rgb, animation.depths)):
        rgb_paths.append(save_image(frames_dir / f"{i:04d}_rgb.png", image, overwrite=overwrite))
        depth_paths.append(save_depth_npy(frames_dir / f"{i:04d}_depth.npy", depth, overwrite=overwrite))
    for stale in (out / "animation.mp4", out / "animation.gif"):
        stale.unlink(missing_ok=True)  # overwrite: the writer may fall back to the other format
    video = write_video(out / "animation.mp4", np.concatenate([rgb, colored], axis=2), fps)  # (N, H, 2W, 3)
    return AnimationFiles(rgb_paths, depth_paths, video)
