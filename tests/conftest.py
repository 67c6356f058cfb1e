"""Shared fixtures: tiny models and folders built on the fly (nothing is downloaded)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

# Property tests: the same examples on every run (a failure reproduces), no example database written into the
# tree, no per-example deadline (the shared CI machine is noisy). The slow fuzz tests raise max_examples locally.
settings.register_profile("jointportrait", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("jointportrait")

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


@pytest.fixture(scope="session")
def tiny_video_model_dir(tmp_path_factory) -> Path:
    """A saved tiny video model: the 18-channel stage-2 denoiser + ReferenceNet and a random motion adapter
    whose output is not zero (so that the motion modules and motion frames change the frames)."""
    from jointportrait.loading import create_tiny_joint_model
    from jointportrait.models.motion import build_motion_adapter
    from jointportrait.models.widen import widen_unet
    from jointportrait.pipelines import JointPortraitVideoPipeline

    components = create_tiny_joint_model(seed=0).components
    components["unet"] = widen_unet(components["unet"], 18, 8)
    adapter = build_motion_adapter(components["unet"], seed=0, zero_output=False)
    out = tmp_path_factory.mktemp("tiny_video")
    JointPortraitVideoPipeline(**components, motion_adapter=adapter).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def wide_dataset(tmp_path_factory) -> Path:
    """Synthetic studio frames (3 subjects x 3 frames) cut to 24 x 32 (H x W): a 24 px crop has 9 horizontal
    positions, so random crops vary from draw to draw (square frames scale to a single crop)."""
    import json

    import numpy as np
    from PIL import Image

    from jointportrait.data.synth import SynthConfig, write_dataset
    from jointportrait.face_models import load_face_model

    out = tmp_path_factory.mktemp("synth_wide")
    write_dataset(out, load_face_model("procedural"), SynthConfig(subjects=3, frames_per_subject=3, size=32, seed=1))
    for line in (out / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key in ("image", "mask", "skin_mask"):
            Image.fromarray(np.asarray(Image.open(out / record[key]))[4:28]).save(out / record[key])
        np.save(out / record["depth"], np.load(out / record["depth"])[4:28])
    return out



@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(size)`` mounts a tmpfs of ``size`` (mount's syntax: ``8k``, ``40m``) under ``tmp_path`` for a
    disk-full test and unmounts it afterwards; the test is skipped where mounting needs privileges it lacks."""
    mounted = []

    def mount(size: str) -> Path:
        mount_point = tmp_path / f"tmpfs{len(mounted)}"
        mount_point.mkdir()
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {made.stderr.strip()}")
        mounted.append(mount_point)
        return mount_point

    yield mount
    for mount_point in mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny models gain
    nothing from more, and on a shared 2-core machine two threads spin-wait and run several times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def moving_sphere_depths() -> list[np.ndarray]:
    """Five 48 x 48 driving depth maps of a sphere moving left to right (larger = farther, 0 = no depth): the
    depth folder of the ``animate`` tests of the command line and the web demo."""
    n, size = 5, 48
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    out = []
    for f in range(n):
        r2 = (xs - 0.4 + 0.8 * f / (n - 1)) ** 2 + ys**2
        out.append(np.where(r2 < 0.4, 50.0 - 5 * np.sqrt(np.clip(0.4 - r2, 0, None)), 0.0).astype(np.float32))
    return out
