"""Synthetic clips of ``jointportrait synth --video`` (known parameters and depth) for the tracker tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.face_models import load_face_model


def write_synthetic_video(out: Path, frames: int, size: int, seed: int = 0, model_path: Path | None = None) -> Path:
    """One subject, one clip (default: the procedural head, fast; the benchmark measures the ICT model)."""
    write_dataset(out, load_face_model(model_path or "procedural"), SynthConfig(subjects=1, frames_per_subject=frames, size=size,
                                                          video=True, clip_length=frames, seed=seed))
    return out


@pytest.fixture(scope="session")
def synthetic_video(tmp_path_factory) -> Path:
    """Eight frames at 96 px."""
    return write_synthetic_video(tmp_path_factory.mktemp("synth_video"), frames=8, size=96)


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory, face_model_path) -> Path:
    """Four frames at 64 px of the model the command uses by default, for the command-line tests."""
    return write_synthetic_video(tmp_path_factory.mktemp("tiny_video"), frames=4, size=64, seed=1,
                                 model_path=face_model_path)
