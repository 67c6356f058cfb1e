"""Training tests: accelerate keeps process-wide state; reset it so each in-process run starts clean."""

from __future__ import annotations

import pytest
import torch

# One thread: tiny models gain nothing from more, and on a shared 2-core machine extra threads only spin.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
