"""Tiny stage-1 and stage-2 runs in-process: loss goes down, export loads, stage 2 widens stage 1."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from train_fixture_data import ContractDataset

from jointportrait.errors import JointPortraitError, OutputExistsError
from jointportrait.objective import joint_diffusion_loss
from jointportrait.training.config import config_from_dict
from jointportrait.training.stages import STAGES, JointStage, TrainingStage
from jointportrait.training.trainer import NonFiniteLossError, train


def _cfg(**sections):
    base = {"model": {"base": "tiny"}, "data": {"resolution": 64}, "optim": {"learning_rate": 1e-3},
            "train": {"batch_size": 2, "gradient_accumulation_steps": 1, "max_steps": 10, "checkpoint_every": 5,
                      "checkpoints_total_limit": 1, "reference_dropout": 0.0},
            "validation": {"every": 0}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return config_from_dict(base)


def _eval_loss(model, vae, scheduler, batch) -> float:
    """The loss on a fixed batch with fixed noise and timesteps, averaged over 4 draws."""
    model.eval()
    with torch.no_grad():
        losses = [joint_diffusion_loss(model, vae, scheduler, batch, generator=torch.Generator().manual_seed(s)).loss
                  for s in range(4)]
    return float(torch.stack(losses).mean())


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    cfg = _cfg(train={"max_steps": 16, "checkpoint_every": 8}, validation={"every": 16, "num_inference_steps": 2})
    data = ContractDataset()
    result = train(cfg, out, dataset=data, val_dataset=data)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    return cfg, out, result


def test_tiny_stage1_loss_goes_down_and_exports(stage1_run):
    from jointportrait.models.joint_denoiser import JointDenoiser
    from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline

    cfg, out, result = stage1_run
    assert result.state.step == 16 and len(result.losses) == 16 and result.world_size == 1
    batch = torch.utils.data.default_collate([ContractDataset()[i] for i in (0, 5, 10, 11)])
    initial = JointStage(cfg)
    pipe = JointPortraitPipeline.from_pretrained(out / "final", local_files_only=True)
    trained = JointDenoiser(pipe.unet, pipe.reference_unet)
    before = _eval_loss(initial.model, initial.components.vae, initial.components.scheduler, batch)
    after = _eval_loss(trained, pipe.vae, pipe.scheduler, batch)
    assert after < 0.8 * before, (before, after)
    # frozen parts are exported unchanged
    assert all(torch.equal(a, b) for a, b in zip(initial.components.vae.state_dict().values(), pipe.vae.state_dict().values()))
    # run folder: frozen config, last checkpoint only, TensorBoard events, validation grid (5 columns)
    assert (out / "config.yaml").exists() and sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-16"]
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    grid = Image.open(out / "validation" / "step-16.png")
    assert grid.size == (5 * 64, 2 * 64)


def test_tiny_stage2_widens_the_stage1_model_and_trains(stage1_run, tmp_path):
    from jointportrait.loading import load_joint_pipeline
    from jointportrait.models.joint_denoiser import JointDenoiser

    _, stage1_dir, _ = stage1_run
    cfg = _cfg(model={"init_from": str(stage1_dir), "in_channels": 18},
               train={"max_steps": 3, "checkpoint_every": 3},
               validation={"every": 3, "num_references": 1, "num_inference_steps": 2})
    widened = JointStage(cfg).model
    s1 = load_joint_pipeline(stage1_dir / "final")
    narrow = JointDenoiser(s1.unet, s1.reference_unet)
    assert widened.unet.config.in_channels == 18
    x = torch.randn(2, 8, 8, 8)
    cond = torch.randn(2, 10, 8, 8)  # any masks / masked latents: the new input weights are zero
    t, ehs, ref = torch.tensor([10, 500]), torch.zeros(2, 1, 32), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        a = widened(torch.cat([x, cond], 1), t, ehs, reference_latents=ref)
        b = narrow(x, t, ehs, reference_latents=ref)
    assert torch.allclose(a, b, atol=1e-5)

    data = ContractDataset()
    result = train(cfg, tmp_path / "s2", dataset=data, val_dataset=data)
    assert result.state.step == 3 and all(np.isfinite(result.losses))
    s2 = load_joint_pipeline(tmp_path / "s2" / "final")
    assert s2.unet.config.in_channels == 18
    assert not torch.equal(s2.unet.conv_in.weight[:, 8:], torch.zeros_like(s2.unet.conv_in.weight[:, 8:]))
    grid = Image.open(tmp_path / "s2" / "validation" / "step-3.png")
    assert grid.size == (7 * 64, 64)  # + depth estimation and depth-to-image columns


def _nan_on_second_call(monkeypatch):
    calls = {"n": 0}

    original = JointStage.loss

    def loss(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out = dataclasses.replace(out, loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(JointStage, "loss", loss)


def test_nonfinite_loss_stops_naming_the_step(tmp_path, monkeypatch):
    _nan_on_second_call(monkeypatch)
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        train(_cfg(train={"max_steps": 3}), tmp_path, dataset=ContractDataset())


def test_nonfinite_loss_skip_mode(tmp_path, monkeypatch):
    _nan_on_second_call(monkeypatch)
    result = train(_cfg(train={"max_steps": 3, "nonfinite_loss": "skip"}), tmp_path, dataset=ContractDataset())
    assert result.state.step == 3 and result.state.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_bf16_run_keeps_frozen_parts_in_full_precision_on_export(tmp_path):
    from jointportrait.loading import load_joint_pipeline

    cfg = _cfg(train={"max_steps": 1, "mixed_precision": "bf16", "ema": {"enabled": True}})
    result = train(cfg, tmp_path, dataset=ContractDataset())
    assert result.state.step == 1
    pipe = load_joint_pipeline(tmp_path / "final")
    assert pipe.vae.dtype == torch.float32 and pipe.unet.dtype == torch.float32
    initial_vae = JointStage(cfg).components.vae
    assert all(torch.equal(a, b) for a, b in zip(initial_vae.state_dict().values(), pipe.vae.state_dict().values()))


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = _cfg()
    batch = torch.utils.data.default_collate([ContractDataset()[i] for i in (0, 4)])
    grads = []
    for checkpointing in (False, True):
        c = JointStage(cfg)
        c.model.freeze_reference_parameters_without_reader()
        if checkpointing:
            c.model.unet.enable_gradient_checkpointing()
            c.model.reference_unet.enable_gradient_checkpointing()
        c.model.train()
        joint_diffusion_loss(c.model, c.components.vae, c.components.scheduler, batch, generator=torch.Generator().manual_seed(0)).loss.backward()
        grads.append([p.grad for p in c.model.parameters() if p.requires_grad])
    assert all(a is not None and torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_cli_refuses_a_used_folder_and_a_resume_without_a_run(tmp_path):
    from jointportrait.cli.train import resolve_run

    (tmp_path / "x").write_text("")
    args = argparse.Namespace(config=None, output_dir=tmp_path, resume=None, overrides=[])
    with pytest.raises(JointPortraitError, match="--config is required"):
        resolve_run(args)
    args.config = "configs/train/tiny_stage1.yaml"
    with pytest.raises(OutputExistsError, match="--resume latest"):
        resolve_run(args)
    args.resume = "latest"
    with pytest.raises(JointPortraitError, match="no config.yaml"):
        resolve_run(args)
    assert issubclass(STAGES["joint"], TrainingStage)
