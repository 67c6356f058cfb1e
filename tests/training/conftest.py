"""Training tests: accelerate keeps process-wide state; reset it so each in-process run starts clean."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# One thread: tiny models gain nothing from more, and on a shared 2-core machine extra threads only spin.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """A small dataset folder written by ``jointportrait synth`` (3 subjects x 2 frames, 64 px)."""
    from jointportrait.cli.main import main

    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--subjects", "3", "--frames-per-subject", "2", "--size", "64"]) == 0
    return out


@pytest.fixture(scope="session")
def synth_clips(tmp_path_factory) -> Path:
    """Clips written by ``jointportrait synth --video`` (2 subjects x 10 frames, 64 px): 6 + 2 motion frames fit."""
    from jointportrait.cli.main import main

    out = tmp_path_factory.mktemp("synth_clips")
    assert main(["synth", "--out", str(out), "--subjects", "2", "--frames-per-subject", "10", "--size", "64",
                 "--video", "--clip-length", "10"]) == 0
    return out
