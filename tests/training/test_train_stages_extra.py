"""The VAE stage and the baseline/ablation kinds run through the one trainer (issue: evaluation harness)."""

import json

import pytest
import torch
from diffusers import AutoencoderKL

from jointportrait.loading import load_pipeline
from jointportrait.pipelines import SeparateConditionalPipeline
from jointportrait.training.config import config_from_dict
from jointportrait.training.stages import STAGES
from jointportrait.training.trainer import train
from jointportrait.training.vae_stage import VAETrainingModule, tiny_vae, vae_loss


def _cfg(root, kind, **model):
    return config_from_dict({
        "model": {"kind": kind, "base": "tiny", **model},
        "data": {"root": str(root), "resolution": 64},
        "optim": {"learning_rate": 1e-3, "weight_decay": 0.0},
        "train": {"batch_size": 2, "gradient_accumulation_steps": 1, "max_steps": 2, "checkpoint_every": 2,
                  "log_every": 1, "reference_dropout": 0.0},
        "validation": {"every": 0},
    })


def test_registry_has_every_stage_and_baseline():
    assert {"joint", "vae", "image_to_depth", "depth_to_image", "concat_reference"} <= set(STAGES)


def test_vae_loss_is_l1_plus_weighted_kl():
    module = VAETrainingModule(tiny_vae(levels=3, seed=0))
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "depth": torch.rand(2, 1, 32, 32) * 2 - 1}
    out = vae_loss(module, None, None, batch, kl_weight=0.0)
    x = torch.cat([batch["image"], batch["depth"].expand(-1, 3, -1, -1)])
    recon, _ = module(x)
    assert torch.allclose(out.loss, (recon - x).abs().mean(), atol=1e-6)
    assert torch.allclose(out.loss, (out.loss_rgb + out.loss_depth) / 2, atol=1e-6)


def test_decoder_only_fine_tune_freezes_the_encoder():
    module = VAETrainingModule(tiny_vae(levels=2), train_encoder=False)
    assert not any(p.requires_grad for p in module.vae.encoder.parameters())
    assert all(p.requires_grad for p in module.vae.decoder.parameters())


def test_vae_stage_then_baseline_on_the_trained_vae(synth_data, tmp_path):
    vae_run = tmp_path / "vae"
    result = train(_cfg(synth_data, "vae", vae_levels=3), vae_run)
    vae = AutoencoderKL.from_pretrained(result.final_dir)
    assert len(vae.config.block_out_channels) == 3
    scale = json.loads((result.final_dir / "config.json").read_text())["scaling_factor"]
    assert scale != 0.18215 and scale > 0  # measured from the latents, not SD's constant

    base_run = tmp_path / "i2d"
    result = train(_cfg(synth_data, "image_to_depth", vae=str(vae_run)), base_run)
    parts = load_pipeline(result.final_dir)
    assert isinstance(parts, SeparateConditionalPipeline) and parts.direction == "image_to_depth"
    assert parts.unet.config.in_channels == 8 and parts.unet.config.out_channels == 4
    assert parts.unet.config.sample_size == 16  # 64 px through a 3-level VAE
    assert parts.vae.config.scaling_factor == pytest.approx(scale)


def test_max_minutes_stops_early_with_a_checkpoint_and_an_export(synth_data, tmp_path):
    cfg = _cfg(synth_data, "joint")
    cfg.train.max_steps = 1000
    cfg.train.max_minutes = 1e-6  # past the deadline right after the first step
    result = train(cfg, tmp_path / "run")
    assert 0 <= result.state.step < 1000
    assert (tmp_path / "run" / f"checkpoint-{result.state.step}").is_dir()
    assert (result.final_dir / "model_index.json").exists()


def test_max_minutes_accepts_integers_from_the_command_line():
    cfg = config_from_dict({"train": {"max_minutes": 5}})
    assert cfg.train.max_minutes == 5.0


def test_v_prediction_runs_export_a_v_prediction_scheduler(synth_data, tmp_path):
    from jointportrait import JointPortraitPipeline

    cfg = _cfg(synth_data, "joint", prediction_type="v_prediction")
    result = train(cfg, tmp_path / "run")
    pipe = JointPortraitPipeline.from_pretrained(result.final_dir)
    assert pipe.scheduler.config.prediction_type == "v_prediction"


def test_training_config_names_an_image_encoder(tmp_path):
    from jointportrait.loading import tiny_base_components
    from jointportrait.training.stages import JointStage

    clip = tmp_path / "clip"
    tiny_base_components(seed=1, with_image_encoder=True).image_encoder.save_pretrained(clip)
    cfg = config_from_dict({"model": {"kind": "joint", "base": "tiny", "image_encoder": str(clip)}})
    stage = JointStage(cfg)
    assert stage.components.image_encoder is not None and stage.frozen["image_encoder"] is not None
    assert JointStage(config_from_dict({"model": {"base": "tiny"}})).components.image_encoder is None
