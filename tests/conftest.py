"""Shared fixtures: tiny models and folders built on the fly (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny joint model folder (8-channel denoiser + ReferenceNet + VAE + scheduler)."""
    from jointportrait.loading import create_tiny_joint_model

    out = tmp_path_factory.mktemp("tiny_joint")
    create_tiny_joint_model(out, seed=0)
    return out


@pytest.fixture(scope="session")
def face_model_path() -> Path:
    """The ICT face model file shipped inside the package (what ``--face-model ict``, the default, loads)."""
    from jointportrait.face_models.ict import ICT_LIGHT_PATH

    return ICT_LIGHT_PATH


@pytest.fixture(scope="session")
def tiny_stage2_model_dir(tmp_path_factory) -> Path:
    """A saved tiny joint model whose denoiser is widened to the 18-channel stage-2 (inpainting) input."""
    from jointportrait.loading import create_tiny_joint_model
    from jointportrait.models.widen import widen_unet
    from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline

    components = create_tiny_joint_model(seed=0).components
    components["unet"] = widen_unet(components["unet"], 18, 8)
    out = tmp_path_factory.mktemp("tiny_joint_stage2")
    JointPortraitPipeline(**components).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain): a real 512 x 512 portrait."""
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="session")
def detector():
    """One face detector for the session (loading dlib's models takes a while)."""
    from jointportrait.faces import FaceDetector

    return FaceDetector()


@dataclass
class RealClip:
    """A folder of frames made from a real photo: ``maps[t]`` (2, 3) takes photo pixels to frame ``t``'s
    pixels; frame ``faceless`` holds no face."""

    path: Path
    maps: list[np.ndarray]
    faceless: int


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory, astronaut) -> RealClip:
    """Six 160 x 160 frames of the astronaut's face in slow rotation, zoom and pan; frame 3 is plain grey."""
    import cv2
    from PIL import Image

    out = tmp_path_factory.mktemp("astronaut_clip")
    maps = []
    for t in range(6):
        m = cv2.getRotationMatrix2D((222.0, 130.0), 3.0 * np.sin(t), 1.0 + 0.03 * t)  # (2, 3)
        m[:, 2] += (4.0 * t - 142.0, -2.0 * t - 50.0)
        frame = cv2.warpAffine(astronaut, m, (160, 160), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if t == 3:
            frame = np.full_like(frame, 128)
        Image.fromarray(frame).save(out / f"{t:03d}.png")
        maps.append(m)
    return RealClip(out, maps, faceless=3)


@pytest.fixture(scope="session")
def astronaut_hand_labels() -> dict[int, tuple[float, float]]:
    """Index -> (x, y) of 21 well-defined points of the astronaut's face (eyes, nose, mouth, chin), labelled
    by hand (tests/faces/astronaut_hand_landmarks.json)."""
    import json

    points = json.loads((Path(__file__).parent / "faces" / "astronaut_hand_landmarks.json").read_text())["points"]
    return {int(k): (float(x), float(y)) for k, (x, y) in points.items()}
