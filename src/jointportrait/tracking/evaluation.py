"""How well the tracker recovers depth on synthetic clips with known geometry (paper Sec. 5.1, checked on
clips of ``jointportrait synth --video``).

:func:`load_synthetic_clip` reads a clip of the synthetic generator with its
true depth and skin mask and the true landmarks (the face model's landmark
vertices projected with the stored parameters), plus Gaussian landmark noise.
:func:`evaluate_track` gives the aligned AbsRel of the tracked depth over the
true skin mask and the landmark error against the noise-free landmarks.
AbsRel follows the project's depth-metric convention
(:func:`jointportrait.evaluation.depth_metrics.depth_metrics`, least-squares
scale and shift in depth space, then mean |a - g| / g).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from jointportrait.data.manifest import read_manifest
from jointportrait.data.synth import frame_params
from jointportrait.evaluation.depth_metrics import depth_metrics
from jointportrait.face_models import FaceModel
from jointportrait.tracking.tracker import TrackResult


def true_landmarks(model: FaceModel, params: dict) -> np.ndarray:
    """The 68 landmarks ``(68, 2)`` in pixels of a synthetic frame, from its stored parameters."""
    def as64(key: str) -> torch.Tensor:
        return torch.tensor(params[key], dtype=torch.float64)

    identity = as64("identity").float()[None]
    weights = torch.tensor([params["blendshapes"][n] for n in model.blendshape_names], dtype=torch.float32)[None]
    verts = model.vertices(identity=identity, blendshape_weights=weights)[0, model.landmark_indices].double()
    world = verts @ as64("rotation_matrix").T + as64("translation_cm")  # (68, 3) world = model frame
    w2c = as64("world_to_camera")
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]  # (68, 3)
    K = as64("intrinsics")
    return (cam[:, :2] / cam[:, 2:3] * torch.stack([K[0, 0], K[1, 1]]) + K[:2, 2]).numpy()


@dataclass
class SyntheticClip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    depth: np.ndarray  # (F, H, W) float32 camera z, 0 outside the mask
    skin: np.ndarray  # (F, H, W) bool
    clean_landmarks: np.ndarray  # (F, 68, 2)
    landmarks: np.ndarray  # (F, 68, 2) with noise


def load_synthetic_clip(root: str | os.PathLike, model: FaceModel, clip: str | None = None, noise_px: float = 1.5,
                        seed: int = 0) -> SyntheticClip:
    """A clip (default: the first) of a synthetic video dataset, with landmarks perturbed by Gaussian noise of
    ``noise_px`` pixels per coordinate at 256 px (scaled with the frame size)."""
    records = [r for r in read_manifest(root) if r.clip is not None]
    clip = clip or min(r.clip for r in records)
    records = sorted((r for r in records if r.clip == clip), key=lambda r: r.frame)
    clean = np.stack([true_landmarks(model, frame_params(r)) for r in records])
    frames = np.stack([np.asarray(Image.open(r.image).convert("RGB")) for r in records])
    noise = np.random.default_rng(seed).normal(size=clean.shape) * noise_px * max(frames.shape[1:3]) / 256.0
    return SyntheticClip(
        frames=frames,
        depth=np.stack([np.load(r.depth) for r in records]).astype(np.float32),
        skin=np.stack([np.asarray(Image.open(r.skin_mask)) > 127 for r in records]),
        clean_landmarks=clean.astype(np.float32),
        landmarks=(clean + noise).astype(np.float32),
    )


def evaluate_track(clip: SyntheticClip, result: TrackResult) -> tuple[float, float]:
    """Mean per-frame aligned AbsRel over true skin ∩ both depths valid, and the mean distance in pixels of
    the fitted landmarks to the noise-free ones."""
    valid = clip.skin & result.mask & (clip.depth > 0) & (result.depth > 0)
    abs_rel = float(np.mean([depth_metrics(result.depth[f], clip.depth[f], valid[f], alignment="depth")["abs_rel"]
                             for f in range(len(valid))]))
    return abs_rel, float(np.linalg.norm(result.fitted_landmarks - clip.clean_landmarks, axis=-1).mean())
