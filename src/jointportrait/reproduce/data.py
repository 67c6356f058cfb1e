"""The protocol's data (paper Sec. 5.1, supplementary 7.3): a studio set with exact depth and an
in-the-wild set with pseudo ground-truth depth from the face tracker.

- **Studio**: ``jointportrait synth`` stills (ICT face model, studio lighting and
  portrait lenses), depth rendered from the meshes: exact.
- **Wild**: clips rendered the paper's way round: the frames come from another
  appearance pipeline (wider lenses, and a consumer-camera model: per-clip white
  balance and contrast, blur, sensor noise and JPEG compression), and their depth
  is *not* the rendered one but that of the ICT model fitted by the tracker
  (:func:`jointportrait.tracking.track_clip`) to noisy landmarks (the true 68
  points plus Gaussian noise, standing in for a detector), one identity per clip.
  Training reads the pseudo ground truth; the held-out wild subjects keep their
  rendered (true) depth for evaluation, so the tracker's error is measured too.

Every folder is written under a temporary name and renamed when complete, so an
interrupted run starts that folder again and never reads half a dataset.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jointportrait.data.manifest import read_manifest, write_manifest
from jointportrait.data.synth import SynthConfig, frame_params, write_dataset
from jointportrait.evaluation.depth_metrics import depth_metrics
from jointportrait.face_models import FaceModel
from jointportrait.tracking.evaluation import true_landmarks
from jointportrait.tracking.export import write_clip
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import track_clip

logger = logging.getLogger(__name__)

STUDIO_FOV = (18.0, 30.0)  # degrees, portrait lenses (synth's default)
WILD_FOV = (32.0, 48.0)  # phone / webcam lenses
LANDMARK_NOISE_PX = 4.0  # per coordinate at 256 px, scaled with the frame size


@dataclass(frozen=True)
class DataSizes:
    """How much data the protocol renders (subjects are split 75 / 6.25 / 18.75 % train / val / test)."""

    size: int = 64
    studio_subjects: int = 240
    studio_frames: int = 3
    wild_subjects: int = 64
    wild_frames: int = 6  # one clip per subject
    seed: int = 0  # studio seed; the wild set uses seed + 1 (other identities)
    photometric_tracking: bool = False  # landmark-only fits (the photometric stage costs ~25 s per clip here)
    tracker_steps: tuple[int, int] = (30, 150)  # rigid, shape


def _atomic_folder(final: Path) -> Path:
    """A fresh temporary folder beside ``final`` (any earlier partial one is removed)."""
    tmp = final.with_name(final.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _synth_config(sizes: DataSizes, subjects: int, frames: int, seed: int, video: bool,
                  fov: tuple[float, float]) -> SynthConfig:
    return SynthConfig(subjects=subjects, frames_per_subject=frames, size=sizes.size, video=video,
                       clip_length=frames, seed=seed, val_fraction=0.0625, test_fraction=0.1875,
                       fov_degrees=fov)


def make_studio(root: Path, face: FaceModel, sizes: DataSizes) -> Path:
    """The studio set (``root/studio``): synthetic stills with exact depth."""
    final = root / "studio"
    if (final / "manifest.jsonl").exists():
        return final
    tmp = _atomic_folder(final)
    write_dataset(tmp, face, _synth_config(sizes, sizes.studio_subjects, sizes.studio_frames, sizes.seed,
                                           False, STUDIO_FOV))
    tmp.rename(final)
    return final


def camera_model(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A consumer camera applied to sRGB frames ``(F, H, W, 3)`` uint8 of one clip: white balance and
    contrast (one draw per clip), a slight blur, sensor noise and JPEG compression (per frame)."""
    gains = rng.uniform(0.85, 1.15, size=3)
    contrast, quality = rng.uniform(0.8, 1.2), int(rng.integers(35, 70))
    out = []
    for frame in frames.astype(np.float32) / 255.0:
        x = np.clip((frame * gains - 0.5) * contrast + 0.5, 0.0, 1.0)
        blurred = x.copy()  # 3-tap binomial blur along both axes
        blurred[1:-1] = 0.25 * x[:-2] + 0.5 * x[1:-1] + 0.25 * x[2:]
        blurred[:, 1:-1] = 0.25 * blurred[:, :-2] + 0.5 * blurred[:, 1:-1] + 0.25 * blurred[:, 2:]
        noisy = np.clip(blurred + rng.normal(scale=0.02, size=x.shape), 0.0, 1.0)
        buffer = io.BytesIO()
        Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


def make_wild(root: Path, face: FaceModel, sizes: DataSizes) -> tuple[Path, Path, dict]:
    """The wild set: ``root/wild`` (training clips, tracked pseudo ground truth) and ``root/wild_test``
    (held-out subjects' frames through the same camera model, with their rendered depth).

    Returns the two folders and the tracker's accuracy on the training clips (mean aligned AbsRel of the
    pseudo ground truth against the rendered depth over the skin, and the share of clips that converged).
    """
    final, test_final = root / "wild", root / "wild_test"
    if (final / "manifest.jsonl").exists() and (test_final / "manifest.jsonl").exists():
        return final, test_final, json.loads((final / "tracking.json").read_text())
    rendered = root / "wild_rendered"
    if not (rendered / "manifest.jsonl").exists():
        tmp = _atomic_folder(rendered)
        write_dataset(tmp, face, _synth_config(sizes, sizes.wild_subjects, sizes.wild_frames, sizes.seed + 1,
                                               True, WILD_FOV))
        tmp.rename(rendered)

    records = read_manifest(rendered)
    clips: dict[str, list] = {}
    for r in records:
        clips.setdefault(r.clip, []).append(r)
    tmp, test_tmp = _atomic_folder(final), _atomic_folder(test_final)
    config = TrackerConfig(photometric=sizes.photometric_tracking, rigid_steps=sizes.tracker_steps[0],
                           shape_steps=sizes.tracker_steps[1])
    train_records, test_records, errors, diverged = [], [], [], 0
    for c, (clip, frames_records) in enumerate(sorted(clips.items())):
        frames_records = sorted(frames_records, key=lambda r: r.frame)
        rng = np.random.default_rng([sizes.seed, 7, c])
        clean = np.stack([true_landmarks(face, frame_params(r)) for r in frames_records])  # (F, 68, 2)
        frames = camera_model(np.stack([np.asarray(Image.open(r.image).convert("RGB")) for r in frames_records]), rng)
        split = frames_records[0].split
        if split != "train":  # held out: the frames through the camera, the *rendered* depth for evaluation
            test_records += _copy_test_clip(test_tmp, frames, frames_records)
            continue
        noise = rng.normal(size=clean.shape) * LANDMARK_NOISE_PX * sizes.size / 256.0
        result = track_clip(face, frames, (clean + noise).astype(np.float32), config)
        if result.diverged is not None:
            diverged += 1
            continue
        true = np.stack([np.load(r.depth) for r in frames_records])
        skin = np.stack([np.asarray(Image.open(r.skin_mask)) > 127 for r in frames_records])
        errors += [depth_metrics(result.depth[f], true[f], skin[f] & result.mask[f] & (true[f] > 0))["abs_rel"]
                   for f in range(len(frames_records))]
        written = write_clip(tmp / clip, frames, result, subject=frames_records[0].subject, clip=clip, split="train",
                             fps=25.0, config=config, face_model=face.name)
        train_records += [{**r, **{k: f"{clip}/{r[k]}" for k in ("image", "depth", "mask", "skin_mask",
                                                                    "depth_preview")}} for r in written]
    write_manifest(tmp / "manifest.jsonl", train_records)
    tracking = {"clips_tracked": len({r["clip"] for r in train_records}), "clips_diverged": diverged,
                "pseudo_gt_abs_rel": float(np.mean(errors)) if errors else None,
                "landmark_noise_px_at_256": LANDMARK_NOISE_PX, "photometric": sizes.photometric_tracking}
    (tmp / "tracking.json").write_text(json.dumps(tracking, indent=2) + "\n")
    write_manifest(test_tmp / "manifest.jsonl", test_records)
    for t, f in ((tmp, final), (test_tmp, test_final)):
        if f.exists():
            shutil.rmtree(f)
        t.rename(f)
    return final, test_final, tracking


def _copy_test_clip(out: Path, frames: np.ndarray, records: list) -> list[dict]:
    """Held-out wild frames (after the camera model) with their rendered depth, masks and intrinsics."""
    rows = []
    for sub in ("images", "depth", "mask", "skin"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for frame, r in zip(frames, records):
        stem = r.image.stem
        Image.fromarray(frame).save(out / "images" / f"{stem}.png")
        shutil.copy(r.depth, out / "depth" / f"{stem}.npy")
        shutil.copy(r.mask, out / "mask" / f"{stem}.png")
        shutil.copy(r.skin_mask, out / "skin" / f"{stem}.png")
        rows.append({"image": f"images/{stem}.png", "depth": f"depth/{stem}.npy", "mask": f"mask/{stem}.png",
                     "skin_mask": f"skin/{stem}.png", "subject": r.subject, "clip": r.clip, "frame": r.frame,
                     "split": "test", "source": "wild", "intrinsics": [list(row) for row in r.intrinsics],
                     "depth_scale": r.depth_scale, "depth_unit": "cm"})
    return rows
