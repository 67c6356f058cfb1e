"""Write a tracked clip as a dataset folder (paper Sec. 5.1: in-the-wild frames with pseudo ground-truth depth).

Layout (the project's dataset contract, ``source = "wild"``), ``<stem>`` =
``<clip>_f0007`` (the frame's index in the video; frames without a face are
left out, so numbers may skip): ``images/<stem>.png`` (the frame, or its face
crop with ``crops``: then every per-frame file is the crop's and the
record's ``intrinsics`` and ``crop`` box are the frame's own), ``depth/<stem>.npy``
(float32 camera-space z of the fitted mesh in cm, 0 outside the mask),
``depth_preview/<stem>.png`` (16-bit: near = 1, far = 65535 over the clip's
depth range, 0 = no data), ``mask/<stem>.png`` (255 = covered by the fitted
mesh), ``skin/<stem>.png`` (face skin without eyes and mouth interior),
``params.npz`` (all fitted tensors), ``track.json`` (summary and per-frame
landmark error), ``overlay.mp4`` and ``manifest.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from jointportrait.data.manifest import MANIFEST_NAME, write_manifest
from jointportrait.io import PNG16_MAX, check_writable, save_depth_npy, save_depth_png16
from jointportrait.tracking.crops import CropViews
from jointportrait.tracking.overlay import overlay_frames
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import TrackResult
from jointportrait.tracking.video import write_video


def output_paths(out: Path, clip: str, frame_ids: Sequence[int]) -> list[Path]:
    """Every file :func:`write_clip` creates (to check for existing outputs before tracking)."""
    paths = [out / n for n in (MANIFEST_NAME, "params.npz", "track.json", "overlay.mp4")]
    for f in frame_ids:
        stem = f"{clip}_f{f:04d}"
        paths += [out / "images" / f"{stem}.png", out / "depth" / f"{stem}.npy",
                  out / "depth_preview" / f"{stem}.png", out / "mask" / f"{stem}.png", out / "skin" / f"{stem}.png"]
    return paths


def _png(path: Path, array: np.ndarray, overwrite: bool) -> None:
    Image.fromarray(array).save(check_writable(path, overwrite))


def write_clip(out: Path, frames: np.ndarray, result: TrackResult, *, subject: str, clip: str, split: str,
               fps: float, config: TrackerConfig, face_model: str, overwrite: bool = False,
               frame_ids: Sequence[int] | None = None, crops: CropViews | None = None,
               summary_extra: dict | None = None) -> list[dict]:
    """Write the frames ``(F, H, W, 3)`` and fitted depth of a converged track; returns the manifest records.

    ``frame_ids``: the video frame index of each tracked frame (default ``0 .. F-1``); ``crops``: write
    these face crops (:func:`jointportrait.tracking.crops.render_crops`) instead of the whole frames.
    """
    if result.diverged is not None:
        raise ValueError(f"refusing to write a diverged fit ({result.diverged})")
    frame_ids = list(range(frames.shape[0])) if frame_ids is None else [int(i) for i in frame_ids]
    if len(frame_ids) != frames.shape[0]:
        raise ValueError(f"{len(frame_ids)} frame ids for {frames.shape[0]} frames")
    K = result.intrinsics()
    if crops is None:
        images, depth, masks, skin = frames, result.depth, result.mask, result.skin
        Ks = np.broadcast_to(K, (len(frame_ids), 3, 3))
    else:
        images, depth, masks, skin, Ks = crops.images, crops.depth, crops.mask, crops.skin, crops.intrinsics
    valid = depth[masks]
    lo, hi = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
    records = []
    for i, f in enumerate(frame_ids):
        stem = f"{clip}_f{f:04d}"
        mask = masks[i]
        _png(out / "images" / f"{stem}.png", images[i], overwrite)
        save_depth_npy(out / "depth" / f"{stem}.npy", np.where(mask, depth[i], 0.0), overwrite)
        preview = np.where(mask, 1.0 + (depth[i] - lo) / max(hi - lo, 1e-6) * (PNG16_MAX - 1), 0.0)
        save_depth_png16(out / "depth_preview" / f"{stem}.png", preview, scale=1.0, overwrite=overwrite)
        _png(out / "mask" / f"{stem}.png", mask.astype(np.uint8) * 255, overwrite)
        _png(out / "skin" / f"{stem}.png", skin[i].astype(np.uint8) * 255, overwrite)
        record = {
            "image": f"images/{stem}.png", "depth": f"depth/{stem}.npy", "mask": f"mask/{stem}.png",
            "skin_mask": f"skin/{stem}.png", "subject": subject, "clip": clip, "frame": f, "split": split,
            "source": "wild", "intrinsics": np.round(Ks[i], 6).tolist(), "depth_scale": 1.0, "depth_unit": "cm",
            "depth_preview": f"depth_preview/{stem}.png", "time_s": round(f / fps, 6),
        }
        if crops is not None:
            record["crop"] = crops.crops[i].as_dict()
        records.append(record)
    result.params.save(check_writable(out / "params.npz", overwrite), frame_ids=np.asarray(frame_ids))
    summary = {
        "subject": subject, "clip": clip, "frames": len(frame_ids), "frame_ids": frame_ids, "fps": fps,
        "face_model": face_model, "focal_px": float(K[0, 0]),
        "landmark_error_px": np.round(result.landmark_error, 4).tolist(),
        "photometric_error": result.photometric_error, "config": asdict(config),
        "crop_size": None if crops is None else crops.crops[0].size, **(summary_extra or {}),
    }
    check_writable(out / "track.json", overwrite).write_text(json.dumps(summary, indent=1) + "\n")
    overlay = overlay_frames(frames, result.mask, result.normals, result.landmarks, result.fitted_landmarks)
    write_video(check_writable(out / "overlay.mp4", overwrite), overlay, fps)
    write_manifest(check_writable(out / MANIFEST_NAME, overwrite), records)
    return records
