"""Baselines and ablations (paper Sec. 5.2, 9) on tiny models: shapes, training signal, determinism, saving."""

from __future__ import annotations

import pytest
import torch

from jointportrait.loading import tiny_base_components
from jointportrait.models.baselines import (
    BASELINES,
    CONCAT_REFERENCE,
    DEPTH_TO_IMAGE,
    IMAGE_TO_DEPTH,
    ConcatReferenceDenoiser,
    ConditionalDenoiser,
    baseline_components_from_base,
    build_baseline_model,
    load_baseline,
    sample_concat_reference,
    sample_conditional,
    save_baseline,
)


def _batch(seed: int = 0, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(n, 3, 64, 64, generator=g) * 2 - 1,
        "depth": torch.rand(n, 1, 64, 64, generator=g) * 2 - 1,
        "reference": torch.rand(n, 3, 64, 64, generator=g) * 2 - 1,
    }


def _components(kind: str) -> dict:
    return baseline_components_from_base(tiny_base_components(seed=0), kind)


@pytest.mark.parametrize("kind,cls,channels", [(IMAGE_TO_DEPTH, ConditionalDenoiser, (8, 4)),
                                               (DEPTH_TO_IMAGE, ConditionalDenoiser, (8, 4)),
                                               (CONCAT_REFERENCE, ConcatReferenceDenoiser, (12, 8))])
def test_build_shapes(kind, cls, channels):
    comps = _components(kind)
    model = build_baseline_model(comps)
    assert isinstance(model, cls)
    assert (model.unet.config.in_channels, model.unet.config.out_channels) == channels
    assert (comps["reference_unet"] is not None) == BASELINES[kind].uses_reference_net
    z = torch.randn(2, 8, 8, 8)
    ehs = torch.zeros(2, 1, model.unet.config.cross_attention_dim)
    out = model(z, torch.tensor([10, 500]), ehs, reference_latents=torch.randn(2, 4, 8, 8))
    assert out.shape == (2, channels[1], 8, 8)


def test_concat_reference_starts_as_the_base_unet():
    base = tiny_base_components(seed=0)
    model = build_baseline_model(baseline_components_from_base(base, CONCAT_REFERENCE))
    z, ref = torch.randn(2, 8, 8, 8), torch.randn(2, 4, 8, 8)
    ehs = torch.zeros(2, 1, 32)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        out = model(z, t, ehs, reference_latents=ref)
        expected = base["unet"](z[:, :4], t, encoder_hidden_states=ehs).sample
    torch.testing.assert_close(out[:, :4], expected)  # zero-initialised extra inputs are ignored at first
    torch.testing.assert_close(out[:, 4:], expected)  # the depth half copies the RGB head


@pytest.mark.parametrize("kind", [IMAGE_TO_DEPTH, CONCAT_REFERENCE])
def test_loss_goes_down_on_a_fixed_batch(kind):
    comps = _components(kind)
    model = build_baseline_model(comps).train()
    loss_fn = BASELINES[kind].loss
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = _batch()
    losses = []
    for _ in range(6):
        out = loss_fn(model, comps["vae"], comps["scheduler"], batch, reference_dropout=0.5,
                      generator=torch.Generator().manual_seed(0))  # same noise and timesteps every step
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    if kind == IMAGE_TO_DEPTH:
        assert float(out.loss_rgb) == 0.0 and float(out.loss_depth) == pytest.approx(losses[-1])


def test_loss_rejects_the_wrong_model():
    comps = _components(DEPTH_TO_IMAGE)
    with pytest.raises(TypeError, match="ConcatReferenceDenoiser"):
        BASELINES[CONCAT_REFERENCE].loss(build_baseline_model(comps), comps["vae"], comps["scheduler"], _batch())


@pytest.mark.parametrize("kind", [IMAGE_TO_DEPTH, DEPTH_TO_IMAGE])
def test_conditional_sampling_is_deterministic(kind):
    comps = _components(kind)
    model = build_baseline_model(comps).eval()
    batch = _batch(n=1)
    condition = batch["image"] if kind == IMAGE_TO_DEPTH else batch["depth"]

    def run(seed: int, guidance: float = 1.0) -> torch.Tensor:
        return sample_conditional(model, comps["vae"], comps["scheduler"], condition, batch["reference"],
                                  num_inference_steps=3, guidance_scale=guidance,
                                  generator=torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert a.shape == ((1, 1, 64, 64) if kind == IMAGE_TO_DEPTH else (1, 3, 64, 64))
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert run(0, guidance=2.0).shape == a.shape


def test_concat_reference_sampling_is_deterministic():
    comps = _components(CONCAT_REFERENCE)
    model = build_baseline_model(comps).eval()
    ref = _batch(n=2)["reference"]
    images, depths = sample_concat_reference(model, comps["vae"], comps["scheduler"], ref, num_inference_steps=3,
                                             generator=torch.Generator().manual_seed(0))
    again = sample_concat_reference(model, comps["vae"], comps["scheduler"], ref, num_inference_steps=3,
                                    guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 64, 64) and depths.shape == (2, 1, 64, 64)
    torch.testing.assert_close(images, again[0])
    torch.testing.assert_close(depths, again[1])


def test_save_and_load_round_trip(tmp_path):
    comps = _components(IMAGE_TO_DEPTH)
    save_baseline(comps, tmp_path / "b")
    loaded = load_baseline(tmp_path / "b")
    assert loaded["kind"] == IMAGE_TO_DEPTH and loaded["reference_unet"] is not None
    for name in ("unet", "reference_unet"):
        for (k, v), (k2, v2) in zip(comps[name].state_dict().items(), loaded[name].state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
