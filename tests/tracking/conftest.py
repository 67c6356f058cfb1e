"""Synthetic clips with known parameters and depth for the tracker tests (paper Sec. 5.1).

A clip of a random identity with smooth blendshape expressions (the ARKit
blendshapes, not the tracker's 25 PCA components) and head motion, Lambertian
albedo under SH light, rendered by the project's rasteriser; landmarks are the
projected landmark vertices plus Gaussian noise (1.5 px at 256 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from jointportrait.data.face_model import load_face_model
from jointportrait.render import MODEL_TO_OPENCV, PerspectiveCamera, interpolate, rasterize
from jointportrait.tracking.shading import irradiance

FOV_DEGREES = 24.0


@dataclass
class Clip:
    frames: np.ndarray  # (F, S, S, 3) uint8 sRGB
    depth: np.ndarray  # (F, S, S) float32, 0 outside the mask
    mask: np.ndarray  # (F, S, S) bool
    skin: np.ndarray  # (F, S, S) bool
    landmarks: np.ndarray  # (F, 68, 2) noisy
    clean_landmarks: np.ndarray  # (F, 68, 2)
    focal: float


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def make_clip(model_path, num_frames: int = 6, size: int = 96, seed: int = 0, noise_px: float = 1.5) -> Clip:
    model = load_face_model(model_path)
    rng = np.random.default_rng(seed)
    identity = torch.from_numpy(rng.normal(size=(1, 50))).float()
    base = model.vertices(identity=identity)  # (1, V, 3)
    names = model.blendshape_names
    weights = np.zeros((num_frames, len(names)))
    t = np.linspace(0.0, 1.0, num_frames)
    for name, amp, phase in (("jawOpen", 0.5, 0.0), ("mouthSmile_L", 0.6, 1.0), ("mouthSmile_R", 0.6, 1.2),
                             ("browInnerUp_L", 0.5, 2.0), ("browInnerUp_R", 0.5, 2.1), ("eyeBlink_L", 0.4, 3.0)):
        weights[:, names.index(name)] = amp * (0.5 + 0.5 * np.sin(2.0 * t + phase))
    verts = base + torch.einsum("fj,jvc->fvc", torch.from_numpy(weights).float(), model.blendshapes)  # (F, V, 3)
    yaw = np.radians(-20.0 + 40.0 * t)
    pitch = np.radians(8.0 * np.sin(3.0 * t))
    roll = np.radians(4.0 * np.cos(2.0 * t))
    focal = 0.5 * size / math.tan(math.radians(FOV_DEGREES) / 2.0)
    distance = focal * 30.0 / (0.9 * size)
    K = torch.tensor([[focal, 0, (size - 1) / 2], [0, focal, (size - 1) / 2], [0, 0, 1.0]])
    rot = torch.from_numpy(np.stack([_rotation(*p) for p in zip(yaw, pitch, roll, strict=True)])).float()
    cam = (verts @ rot.transpose(1, 2)) @ MODEL_TO_OPENCV.T + torch.tensor([0.3, 1.5, distance])  # (F, V, 3)
    frags = rasterize(cam, model.triangles, PerspectiveCamera(K[None].expand(num_frames, 3, 3)), size, size)

    skin_tone = np.array([0.62, 0.42, 0.33]) * rng.uniform(0.8, 1.1)
    v = base[0].numpy()
    variation = 1.0 + 0.12 * np.sin(0.4 * v[:, 0:1] + rng.uniform(0, 6, 3)) * np.cos(0.3 * v[:, 1:2])
    albedo = torch.from_numpy(np.clip(skin_tone * variation, 0, 1)).float()  # (V, 3)
    lips = (model.vertex_region == 2) | ((torch.from_numpy(v[:, 1]) < -4.5) & (torch.from_numpy(v[:, 1]) > -6.5)
                                         & (torch.from_numpy(np.abs(v[:, 0])) < 2.5))
    albedo[lips] *= torch.tensor([0.9, 0.6, 0.6])
    sh = torch.zeros(9, 3)
    sh[0] = 0.35
    sh[1], sh[2], sh[3] = -0.15, -0.35, 0.25  # key light from above, camera side, subject's left
    colour = interpolate(albedo[None].expand(num_frames, -1, -1), frags) * irradiance(frags.normals, sh)
    background = torch.tensor([0.2, 0.25, 0.3])
    linear = torch.where(frags.mask[..., None], colour, background).clamp(0, 1)
    srgb = torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(1e-8) ** (1 / 2.4) - 0.055)
    frames = (srgb * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()

    lm_cam = cam[:, model.landmark_indices]  # (F, 68, 3)
    clean = (lm_cam[..., :2] / lm_cam[..., 2:3] * focal + (size - 1) / 2).numpy()
    noisy = clean + rng.normal(size=clean.shape) * noise_px * size / 256.0
    skin = frags.mask & model.skin_triangle_mask[frags.triangle_id.clamp_min(0)]
    return Clip(frames, frags.depth.numpy().astype(np.float32), frags.mask.numpy(), skin.numpy(),
                noisy.astype(np.float32), clean.astype(np.float32), focal)


@pytest.fixture(scope="session")
def clip_factory():
    """:func:`make_clip`, for tests that need their own clip."""
    return make_clip


@pytest.fixture(scope="session")
def synthetic_clip() -> Clip:
    """Six frames at 96 px of the procedural head (fast; the ICT model is measured in the benchmark)."""
    return make_clip(None)
