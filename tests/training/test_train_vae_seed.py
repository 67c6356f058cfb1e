"""The tiny VAE's random weights: a function of its seed alone, built without touching the caller's RNG."""

from __future__ import annotations

import torch

from jointportrait.training.vae_stage import tiny_vae


def test_tiny_vae_weights_depend_on_the_seed_only():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = tiny_vae(levels=2, seed=0, sample_size=16)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream is untouched
    torch.manual_seed(456)  # another global state: same weights
    b = tiny_vae(levels=2, seed=0, sample_size=16)
    c = tiny_vae(levels=2, seed=1, sample_size=16)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
