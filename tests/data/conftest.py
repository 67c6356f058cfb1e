"""Small synthetic datasets shared by the data tests (procedural head: fast, no shared files needed)."""

from __future__ import annotations

import pytest

from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.face_models import load_face_model


@pytest.fixture(scope="session")
def still_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_still")
    config = SynthConfig(subjects=3, frames_per_subject=2, size=32, seed=1)
    write_dataset(out, load_face_model("procedural"), config)
    return out


@pytest.fixture(scope="session")
def video_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_video")
    config = SynthConfig(subjects=2, frames_per_subject=8, size=16, video=True, clip_length=8, seed=2)
    write_dataset(out, load_face_model("procedural"), config)
    return out
