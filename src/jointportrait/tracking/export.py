"""Write a tracked clip as a dataset folder (paper Sec. 5.1: in-the-wild frames with pseudo ground-truth depth).

Layout (the project's dataset contract, ``source = "wild"``), ``<stem>`` =
``<clip>_f0007``: ``images/<stem>.png`` (the frame), ``depth/<stem>.npy``
(float32 camera-space z of the fitted mesh in cm, 0 outside the mask),
``depth_preview/<stem>.png`` (16-bit: near = 1, far = 65535 over the clip's
depth range, 0 = no data), ``mask/<stem>.png`` (255 = covered by the fitted
mesh), ``skin/<stem>.png`` (face skin without eyes and mouth interior),
``params.npz`` (all fitted tensors), ``track.json`` (summary and per-frame
landmark error), ``overlay.mp4`` and ``manifest.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from jointportrait.data.manifest import MANIFEST_NAME, write_manifest
from jointportrait.io import PNG16_MAX, check_writable, save_depth_npy, save_depth_png16
from jointportrait.tracking.overlay import overlay_frames
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import TrackResult
from jointportrait.tracking.video import write_video


def output_paths(out: Path, clip: str, num_frames: int) -> list[Path]:
    """Every file :func:`write_clip` creates (to check for existing outputs before tracking)."""
    paths = [out / n for n in (MANIFEST_NAME, "params.npz", "track.json", "overlay.mp4")]
    for f in range(num_frames):
        stem = f"{clip}_f{f:04d}"
        paths += [out / "images" / f"{stem}.png", out / "depth" / f"{stem}.npy",
                  out / "depth_preview" / f"{stem}.png", out / "mask" / f"{stem}.png", out / "skin" / f"{stem}.png"]
    return paths


def _png(path: Path, array: np.ndarray, overwrite: bool) -> None:
    Image.fromarray(array).save(check_writable(path, overwrite))


def write_clip(out: Path, frames: np.ndarray, result: TrackResult, *, subject: str, clip: str, split: str,
               fps: float, config: TrackerConfig, face_model: str, overwrite: bool = False) -> list[dict]:
    """Write the frames and fitted depth of a converged track; returns the manifest records."""
    if result.diverged is not None:
        raise ValueError(f"refusing to write a diverged fit ({result.diverged})")
    K = result.intrinsics()
    valid = result.depth[result.mask]
    lo, hi = float(valid.min()), float(valid.max())
    records = []
    for f in range(frames.shape[0]):
        stem = f"{clip}_f{f:04d}"
        mask = result.mask[f]
        _png(out / "images" / f"{stem}.png", frames[f], overwrite)
        save_depth_npy(out / "depth" / f"{stem}.npy", np.where(mask, result.depth[f], 0.0), overwrite)
        preview = np.where(mask, 1.0 + (result.depth[f] - lo) / max(hi - lo, 1e-6) * (PNG16_MAX - 1), 0.0)
        save_depth_png16(out / "depth_preview" / f"{stem}.png", preview, scale=1.0, overwrite=overwrite)
        _png(out / "mask" / f"{stem}.png", mask.astype(np.uint8) * 255, overwrite)
        _png(out / "skin" / f"{stem}.png", result.skin[f].astype(np.uint8) * 255, overwrite)
        records.append({
            "image": f"images/{stem}.png", "depth": f"depth/{stem}.npy", "mask": f"mask/{stem}.png",
            "skin_mask": f"skin/{stem}.png", "subject": subject, "clip": clip, "frame": f, "split": split,
            "source": "wild", "intrinsics": np.round(K, 6).tolist(), "depth_scale": 1.0, "depth_unit": "cm",
            "depth_preview": f"depth_preview/{stem}.png", "time_s": round(f / fps, 6),
        })
    result.params.save(check_writable(out / "params.npz", overwrite))
    summary = {
        "subject": subject, "clip": clip, "frames": int(frames.shape[0]), "fps": fps, "face_model": face_model,
        "focal_px": float(K[0, 0]), "landmark_error_px": np.round(result.landmark_error, 4).tolist(),
        "photometric_error": result.photometric_error, "config": asdict(config),
    }
    check_writable(out / "track.json", overwrite).write_text(json.dumps(summary, indent=1) + "\n")
    overlay = overlay_frames(frames, result.mask, result.normals, result.landmarks, result.fitted_landmarks)
    write_video(check_writable(out / "overlay.mp4", overwrite), overlay, fps)
    write_manifest(check_writable(out / MANIFEST_NAME, overwrite), records)
    return records
