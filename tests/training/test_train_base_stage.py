"""The base-model stage (the SD 1.5 stand-in), the RGB-only VAE, stop_at_step and the shipped base."""

import json

import numpy as np
import pytest
import torch

from jointportrait.cli.main import main
from jointportrait.loading import load_base_components, load_pipeline, shipped_base_path
from jointportrait.models.mini_sd import MINI_DOWNSAMPLE
from jointportrait.pipelines import BaseModelPipeline
from jointportrait.training.config import config_from_dict
from jointportrait.training.stages import STAGES, BaseModelStage
from jointportrait.training.trainer import train
from jointportrait.training.vae_stage import VAETrainingModule, tiny_vae, vae_loss


def _cfg(root, kind, **overrides):
    cfg = {
        "model": {"kind": kind, "base": "tiny", "prediction_type": "v_prediction"},
        "data": {"root": str(root), "resolution": 64},
        "optim": {"learning_rate": 1e-3, "weight_decay": 0.0, "lr_scheduler": "linear"},
        "train": {"batch_size": 2, "gradient_accumulation_steps": 1, "max_steps": 3, "checkpoint_every": 10,
                  "log_every": 1, "reference_dropout": 0.0},
        "validation": {"every": 2, "num_references": 2, "num_inference_steps": 2},
    }
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return config_from_dict(cfg)


def test_base_stage_trains_samples_and_exports_an_sd_folder_that_create_accepts(synth_data, tmp_path, capsys):
    assert STAGES["base"] is BaseModelStage
    result = train(_cfg(synth_data, "base"), tmp_path / "base")
    assert all(np.isfinite(result.losses)) and result.state.step == 3
    grid = tmp_path / "base" / "validation" / "step-2.png"
    assert grid.stat().st_size > 0  # two rows of unconditional samples
    index = json.loads((result.final_dir / "model_index.json").read_text())
    assert index["_class_name"] == "BaseModelPipeline" and {"unet", "vae", "scheduler"} <= set(index)
    pipe = load_pipeline(result.final_dir)
    assert isinstance(pipe, BaseModelPipeline)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    images = pipe(num_images=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                  output_type="np").images
    assert images.shape == (2, 64, 64, 3) and images.min() >= 0 and images.max() <= 1
    with pytest.raises(ValueError, match="num_images"):
        pipe(num_images=0)
    # the trained base is an SD-layout folder: the joint model is created from it as from SD 1.5
    assert main(["create", "--base-model", str(result.final_dir), "--out", str(tmp_path / "joint"),
                 "--image-encoder", "none"]) == 0
    joint = load_pipeline(tmp_path / "joint")
    assert joint.unet.config.in_channels == 8
    trained = pipe.unet.state_dict()
    for name, tensor in joint.reference_unet.state_dict().items():  # the ReferenceNet is the base UNet
        assert torch.equal(tensor, trained[name]), name


def test_rgb_only_vae_loss_ignores_depth():
    module = VAETrainingModule(tiny_vae(levels=2, seed=0))
    batch = {"image": torch.rand(2, 3, 16, 16) * 2 - 1, "depth": torch.rand(2, 1, 16, 16) * 2 - 1}
    out = vae_loss(module, None, None, batch, kl_weight=0.0, with_depth=False)
    recon, _ = module(batch["image"])
    assert torch.allclose(out.loss, (recon - batch["image"]).abs().mean(), atol=1e-6)
    assert float(out.loss_depth) == 0.0
    other = dict(batch, depth=-batch["depth"])
    assert torch.equal(vae_loss(module, None, None, other, kl_weight=0.0, with_depth=False).loss, out.loss)


def test_decoder_fine_tune_keeps_the_scaling_factor(synth_data, tmp_path):
    first = train(_cfg(synth_data, "vae", **{"model.vae_levels": 2, "model.vae_train_depth": False}), tmp_path / "v1")
    scale = json.loads((first.final_dir / "config.json").read_text())["scaling_factor"]
    second = train(_cfg(synth_data, "vae", **{"model.vae": str(tmp_path / "v1"), "model.vae_train_encoder": False}),
                   tmp_path / "v2")
    assert json.loads((second.final_dir / "config.json").read_text())["scaling_factor"] == scale


def test_stop_at_step_stops_early_on_the_full_schedule(synth_data, tmp_path):
    result = train(_cfg(synth_data, "base", **{"train.max_steps": 10, "train.stop_at_step": 2,
                                               "validation.every": 0}), tmp_path / "run")
    assert result.state.step == 2 and (tmp_path / "run" / "checkpoint-2").is_dir()
    assert (tmp_path / "run" / "final" / "model_index.json").exists()
    with pytest.raises(Exception, match="stop_at_step"):
        _cfg(synth_data, "base", **{"train.stop_at_step": 0})


def test_shipped_base_is_small_fp16_and_creates_a_joint_model(tmp_path):
    path = shipped_base_path()
    weights = list(path.rglob("*.safetensors"))
    assert len(weights) == 2 and sum(w.stat().st_size for w in weights) < 20 * 2**20
    base = load_base_components("shipped", image_encoder="none")
    assert next(base.unet.parameters()).dtype == torch.float32  # fp16 on disk, fp32 in memory
    assert base.unet.config.in_channels == 4 and base.unet.config.sample_size * MINI_DOWNSAMPLE == 64
    assert base.scheduler.config.prediction_type == "v_prediction"
    provenance = json.loads((path / "provenance.json").read_text())
    assert provenance["stages"][1]["steps"] > 1000
    assert main(["create", "--base-model", "shipped", "--out", str(tmp_path / "joint"), "--image-encoder",
                 "none"]) == 0
    assert list(load_pipeline(tmp_path / "joint").reference_unet.config.block_out_channels) == [64, 128, 128]
