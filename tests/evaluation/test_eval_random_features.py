"""Random-feature FID (no weights): its features depend on the seed alone, never on or into the caller's RNG."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from jointportrait.evaluation import inception
from jointportrait.evaluation.runner import evaluate_image


def test_random_inception_seed_leaves_the_global_generator_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "FID_INPUT_SIZE", 75)  # the smallest input InceptionV3 takes: keeps the test fast
    rng = np.random.default_rng(0)
    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / side / f"s{i}.png")
    fids = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        before = torch.random.get_rng_state()
        fids.append(evaluate_image(tmp_path / "pred", tmp_path / "gt", random_inception_seed=0).mean["fid"])
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream is untouched
    assert fids[0] == fids[1]  # the features are a function of random_inception_seed only
