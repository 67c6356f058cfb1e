"""Baselines and ablations (paper Sec. 5.2, 9) on tiny models: shapes, training signal, determinism, saving."""

from __future__ import annotations

import pytest
import torch

from jointportrait.loading import load_pipeline, tiny_base_components
from jointportrait.models.baselines import (
    CONCAT_REFERENCE,
    DEPTH_TO_IMAGE,
    IMAGE_TO_DEPTH,
    ConcatReferenceDenoiser,
    ConditionalDenoiser,
    baseline_components_from_base,
    build_baseline_model,
)
from jointportrait.models.components import ModelComponents
from jointportrait.objective import concat_reference_loss, conditional_diffusion_loss
from jointportrait.pipelines import ConcatReferencePipeline, SeparateConditionalPipeline

LOSSES = {IMAGE_TO_DEPTH: conditional_diffusion_loss, DEPTH_TO_IMAGE: conditional_diffusion_loss,
          CONCAT_REFERENCE: concat_reference_loss}


def _batch(seed: int = 0, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(n, 3, 64, 64, generator=g) * 2 - 1,
        "depth": torch.rand(n, 1, 64, 64, generator=g) * 2 - 1,
        "reference": torch.rand(n, 3, 64, 64, generator=g) * 2 - 1,
    }


def _components(kind: str, with_image_encoder: bool = False) -> ModelComponents:
    return baseline_components_from_base(tiny_base_components(seed=0, with_image_encoder=with_image_encoder), kind)


def _pipeline(kind: str, comps: ModelComponents):
    if kind == CONCAT_REFERENCE:
        pipe = ConcatReferencePipeline(**comps.pipeline_kwargs(with_reference_unet=False))
    else:
        pipe = SeparateConditionalPipeline(**comps.pipeline_kwargs(), direction=kind)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("kind,cls,channels", [(IMAGE_TO_DEPTH, ConditionalDenoiser, (8, 4)),
                                               (DEPTH_TO_IMAGE, ConditionalDenoiser, (8, 4)),
                                               (CONCAT_REFERENCE, ConcatReferenceDenoiser, (12, 8))])
def test_build_shapes(kind, cls, channels):
    comps = _components(kind)
    model = build_baseline_model(kind, comps)
    assert isinstance(model, cls)
    assert (model.unet.config.in_channels, model.unet.config.out_channels) == channels
    assert (comps.reference_unet is not None) == (kind != CONCAT_REFERENCE)  # only "w/o ReferenceNet" has none
    z = torch.randn(2, 8, 8, 8)
    ehs = torch.zeros(2, 1, model.unet.config.cross_attention_dim)
    out = model(z, torch.tensor([10, 500]), ehs, reference_latents=torch.randn(2, 4, 8, 8))
    assert out.shape == (2, channels[1], 8, 8)


def test_concat_reference_starts_as_the_base_unet():
    base = tiny_base_components(seed=0)
    model = build_baseline_model(CONCAT_REFERENCE, baseline_components_from_base(base, CONCAT_REFERENCE))
    z, ref = torch.randn(2, 8, 8, 8), torch.randn(2, 4, 8, 8)
    ehs = torch.zeros(2, 1, 32)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        out = model(z, t, ehs, reference_latents=ref)
        expected = base.unet(z[:, :4], t, encoder_hidden_states=ehs).sample
    torch.testing.assert_close(out[:, :4], expected)  # zero-initialised extra inputs are ignored at first
    torch.testing.assert_close(out[:, 4:], expected)  # the depth half copies the RGB head


@pytest.mark.parametrize("kind", [IMAGE_TO_DEPTH, CONCAT_REFERENCE])
def test_loss_goes_down_on_a_fixed_batch(kind):
    comps = _components(kind)
    model = build_baseline_model(kind, comps).train()
    loss_fn = LOSSES[kind]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = _batch()
    losses = []
    for _ in range(6):
        out = loss_fn(model, comps.vae, comps.scheduler, batch, reference_dropout=0.5,
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
        concat_reference_loss(build_baseline_model(DEPTH_TO_IMAGE, comps), comps.vae, comps.scheduler, _batch())


@pytest.mark.parametrize("kind", [IMAGE_TO_DEPTH, DEPTH_TO_IMAGE])
def test_conditional_sampling_is_deterministic(kind):
    pipe = _pipeline(kind, _components(kind))
    batch = _batch(n=1)
    reference = (batch["reference"] + 1) / 2  # (1, 3, H, W) in [0, 1]
    condition = {"image": (batch["image"] + 1) / 2} if kind == IMAGE_TO_DEPTH else {"depth": batch["depth"][0, 0]}

    def run(seed: int, guidance: float = 1.0) -> torch.Tensor:
        out = pipe(reference, **condition, num_inference_steps=3, guidance_scale=guidance, output_type="pt",
                   generator=torch.Generator().manual_seed(seed))
        assert (out.images is None) == (kind == IMAGE_TO_DEPTH)  # only the generated domain is returned
        return out.depths if kind == IMAGE_TO_DEPTH else out.images

    a, b, c = run(0), run(0), run(1)
    assert a.shape == ((1, 64, 64) if kind == IMAGE_TO_DEPTH else (1, 3, 64, 64))
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert run(0, guidance=2.0).shape == a.shape


def test_conditional_pipeline_needs_its_condition():
    pipe = _pipeline(IMAGE_TO_DEPTH, _components(IMAGE_TO_DEPTH))
    with pytest.raises(ValueError, match="`image` is required"):
        pipe((_batch(n=1)["reference"] + 1) / 2, num_inference_steps=1)


def test_concat_reference_sampling_is_deterministic():
    pipe = _pipeline(CONCAT_REFERENCE, _components(CONCAT_REFERENCE))
    ref = (_batch(n=2)["reference"] + 1) / 2
    first = pipe(ref, num_inference_steps=3, output_type="pt", generator=torch.Generator().manual_seed(0))
    again = pipe(ref, num_inference_steps=3, guidance_scale=1.0, output_type="pt",
                 generator=torch.Generator().manual_seed(0))
    assert first.images.shape == (2, 3, 64, 64) and first.depths.shape == (2, 64, 64)
    torch.testing.assert_close(first.images, again.images)
    torch.testing.assert_close(first.depths, again.depths)


@pytest.mark.parametrize("kind", [IMAGE_TO_DEPTH, CONCAT_REFERENCE])
def test_save_and_load_round_trip_with_the_image_encoder(kind, tmp_path):
    comps = _components(kind, with_image_encoder=True)
    _pipeline(kind, comps).save_pretrained(tmp_path / "b")
    loaded = load_pipeline(tmp_path / "b")
    assert type(loaded) is (ConcatReferencePipeline if kind == CONCAT_REFERENCE else SeparateConditionalPipeline)
    assert loaded.image_encoder is not None  # saved and loaded like the joint model's
    names = ("unet", "image_encoder") if kind == CONCAT_REFERENCE else ("unet", "reference_unet", "image_encoder")
    if kind != CONCAT_REFERENCE:
        assert loaded.direction == kind
    for name in names:
        for (k, v), (k2, v2) in zip(getattr(comps, name).state_dict().items(),
                                    getattr(loaded, name).state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
