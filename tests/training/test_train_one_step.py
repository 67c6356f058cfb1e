"""The one-step depth stage (E2E-FT in the manner of Martin Garcia et al. 2024; issue 17)."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from jointportrait import JointPortraitPipeline
from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.conditioning import TASKS, build_inpainting_condition, denoiser_input
from jointportrait.latent_codec import encode_rgb
from jointportrait.loading import joint_components_from_base, load_joint_pipeline, tiny_base_components
from jointportrait.models.widen import widen_unet
from jointportrait.objective import affine_invariant_l1, predicted_clean
from jointportrait.pipelines.denoising import scheduler_with_spacing
from jointportrait.training.config import ConfigError, config_from_dict
from jointportrait.training.stages.one_step import OneStepDepthStage, one_step_scheduler
from jointportrait.training.trainer import train


def _stage2_pipeline(prediction_type: str = "v_prediction", one_step: bool = False) -> JointPortraitPipeline:
    parts = joint_components_from_base(tiny_base_components(seed=0))
    scheduler = type(parts.scheduler).from_config(parts.scheduler.config, prediction_type=prediction_type)
    if one_step:
        scheduler = one_step_scheduler(scheduler)
    parts = parts.replace(unet=widen_unet(parts.unet, 18, 8), scheduler=scheduler)
    g = torch.Generator().manual_seed(3)  # the widened input weights start at zero: weigh the conditioning
    with torch.no_grad():
        w = parts.unet.conv_in.weight[:, 8:]
        w.copy_(torch.randn(w.shape, generator=g) * 0.1)
    pipe = JointPortraitPipeline(**parts.pipeline_kwargs(), one_step_depth=one_step)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_predicted_clean_inverts_the_noising_for_both_parametrisations():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    a = torch.tensor(0.3)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    assert torch.allclose(predicted_clean(noise, xt, a, "epsilon"), x0, atol=1e-5)
    assert torch.allclose(predicted_clean(v, xt, a, "v_prediction"), x0, atol=1e-5)


def test_affine_invariant_l1_ignores_scale_and_shift_and_counts_the_mask_only():
    target = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    mask = torch.tensor([[[[True, True], [True, False]]]])
    assert affine_invariant_l1(2.0 * target - 5.0, target, mask) < 1e-6
    # pred [0, 1, 1] against target [0, 1, 2] over the mask: by the normal equations scale = cov / var =
    # 1 / (2/3) = 1.5 and shift = 1 - 1.5 * 2/3 = 0, so aligned [0, 1.5, 1.5], |errors| 0, 1/2, 1/2 -> mean 1/3
    pred = torch.tensor([[[[0.0, 1.0], [1.0, 9.0]]]])
    assert float(affine_invariant_l1(pred, target, mask)) == pytest.approx(1 / 3, rel=1e-5)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_one_pipeline_step_returns_the_clean_latent_the_loss_decodes(prediction_type):
    """Inference takes the step training takes: zero latents at the last timestep, and the one-step DDIM
    scheduler ends on the predicted clean latent itself."""
    pipe = _stage2_pipeline(prediction_type, one_step=True)
    image = torch.rand(1, 3, 64, 64)
    out = pipe(image, image=image, num_inference_steps=1, rgb_mask=0.0, depth_mask=1.0,
               latents=torch.zeros(1, 8, 8, 8), timestep_spacing="trailing", output_type="latent",
               output_domains=("depth",))
    with torch.no_grad():
        x = image * 2 - 1
        z = encode_rgb(pipe.vae, x)
        rgb_mask, depth_mask = TASKS["depth_estimation"].masks(like=x[:, :1])
        cond = build_inpainting_condition(pipe.vae, x, torch.ones_like(x[:, :1]), rgb_mask, depth_mask, rgb_latents=z)
        zeros = torch.zeros(1, 8, 8, 8)
        ehs = torch.zeros(1, 1, 32)
        pred = pipe.joint_denoiser(denoiser_input(zeros, cond), torch.tensor([999]), ehs, reference_latents=z)
        expected = predicted_clean(pred[:, 4:], zeros[:, 4:], pipe.scheduler.alphas_cumprod[999], prediction_type)
    one = scheduler_with_spacing(pipe.scheduler, "trailing")
    one.set_timesteps(1)
    assert one.timesteps.tolist() == [999]
    assert torch.allclose(out.depths, expected, atol=1e-5)


def test_estimate_depth_takes_one_deterministic_step_for_a_one_step_model(caplog):
    pipe = _stage2_pipeline(one_step=True)
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    photo = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    try:
        with caplog.at_level("INFO"):
            a = estimate_depth(pipe, photo, num_inference_steps=10, ensemble_size=3, processing_resolution=64,
                               generator=torch.Generator().manual_seed(0))
        b = estimate_depth(pipe, photo, num_inference_steps=1, processing_resolution=64,
                           generator=torch.Generator().manual_seed(1))
    finally:
        hook.remove()
    assert len(calls) == 2  # one denoiser call per estimate, whatever was asked
    assert a.uncertainty is None and a.members.shape[0] == 1
    assert np.array_equal(a.depth, b.depth)  # no noise: the seed does not matter
    assert "one-step depth model" in caplog.text
    plain = _stage2_pipeline()  # the same weights without the flag sample from noise
    c = estimate_depth(plain, photo, num_inference_steps=1, processing_resolution=64,
                       generator=torch.Generator().manual_seed(1))
    assert not np.array_equal(a.depth, c.depth)


def test_the_stage_needs_a_stage2_start():
    with pytest.raises(ConfigError, match="one_step_depth"):
        OneStepDepthStage(config_from_dict({"model": {"kind": "one_step_depth", "base": "tiny"}}))


def test_one_step_stage_trains_and_exports_a_one_step_model(synth_data, tmp_path):
    start = tmp_path / "stage2"
    _stage2_pipeline().save_pretrained(start)
    cfg = config_from_dict({
        "model": {"kind": "one_step_depth", "init_from": str(start), "in_channels": 18},
        "data": {"root": str(synth_data), "resolution": 64},
        "optim": {"learning_rate": 1e-3, "weight_decay": 0.0},
        "train": {"batch_size": 2, "gradient_accumulation_steps": 1, "max_steps": 3, "checkpoint_every": 3,
                  "log_every": 1},
        "validation": {"every": 0},
    })
    result = train(cfg, tmp_path / "run")
    assert all(np.isfinite(result.losses)) and result.losses[-1] > 0
    assert json.loads((result.final_dir / "model_index.json").read_text())["one_step_depth"] is True
    pipe = load_joint_pipeline(result.final_dir)
    assert pipe.is_one_step_depth
    assert pipe.scheduler.config.set_alpha_to_one and pipe.scheduler.config.prediction_type == "v_prediction"
    before = load_joint_pipeline(start).unet.state_dict()
    after = pipe.unet.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the denoiser trained


@pytest.mark.parametrize("name", ["one_step_depth", "tiny_one_step"])
def test_shipped_one_step_configs_load(name):
    from pathlib import Path

    from jointportrait.training.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "train" / f"{name}.yaml")
    assert cfg.model.kind == "one_step_depth" and cfg.model.in_channels == 18 and cfg.model.init_from
    assert cfg.dataset_sources()
