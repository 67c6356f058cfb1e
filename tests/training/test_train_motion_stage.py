"""Stage 3 (paper Sec. 5.1, 7.1-7.2): only the motion modules train, one timestep per clip, eq. 5 over all
frames, motion frames from the ground truth or (at a clip start) the reference, the video folder exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch.utils.data import default_collate

from jointportrait.objective import video_diffusion_loss
from jointportrait.pipelines import JointPortraitVideoPipeline
from jointportrait.training.config import ConfigError, config_from_dict, load_config
from jointportrait.training.stages import MotionStage
from jointportrait.training.trainer import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


def _cfg(clips: Path, **sections) -> object:
    data = {"model": {"kind": "motion", "in_channels": 18},
            "data": {"root": str(clips), "resolution": 64},
            "optim": {"learning_rate": 1e-3},
            "train": {"batch_size": 1, "gradient_accumulation_steps": 1, "max_steps": 2, "checkpoint_every": 2,
                      "reference_dropout": 0.0},
            "video": {"num_frames": 6, "motion_frames": 2, "start_probability": 0.0},
            "validation": {"every": 0}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


def _batch(stage: MotionStage) -> dict:
    dataset = stage.dataset(stage.cfg, "train", 0)
    return default_collate([dataset[0]])


def test_configs_load():
    paper = load_config(CONFIGS / "stage3_motion.yaml")
    assert paper.model.kind == "motion" and paper.video.num_frames == 14 and paper.video.motion_frames == 4
    assert all(s.source == "wild" for s in paper.dataset_sources())  # wild video only (Sec. 7.2)
    assert load_config(CONFIGS / "tiny_stage3.yaml").model.kind == "motion"
    with pytest.raises(ConfigError, match="cache_latents"):
        config_from_dict({"model": {"kind": "motion"}, "data": {"cache_latents": True}})


def test_only_motion_parameters_train(synth_clips, tmp_path):
    cfg = _cfg(synth_clips)
    stage = MotionStage(cfg)
    trainable = {id(p) for p in stage.trainable_parameters()}
    assert trainable == {id(p) for p in stage.model.motion_adapter.parameters()}
    before = {k: v.clone() for k, v in stage.model.state_dict().items()}
    result = train(cfg, tmp_path)
    after = result.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("motion_adapter.") for k in changed)
    exported = JointPortraitVideoPipeline.from_pretrained(result.final_dir, local_files_only=True)
    assert torch.equal(exported.unet.conv_in.weight, before["unet.conv_in.weight"])
    assert torch.equal(exported.motion_adapter.up_blocks[1].motion_modules[1].proj_out.weight,
                       after["motion_adapter.up_blocks.1.motion_modules.1.proj_out.weight"])
    assert isinstance(UNet2DConditionModel.from_pretrained(result.final_dir / "unet"), UNet2DConditionModel)


def test_one_timestep_per_clip_and_eq5_over_all_frames(synth_clips, monkeypatch):
    stage = MotionStage(_cfg(synth_clips))
    stage.prepare(torch.device("cpu"), torch.float32)
    batch = default_collate([stage.dataset(stage.cfg, "train", 0)[i] for i in range(2)])  # 2 clips x 6 frames
    seen = {}
    add_noise = stage.components.scheduler.add_noise

    def spy(z0, noise, t):
        seen["t"], seen["noise"] = t.clone(), noise.clone()
        return add_noise(z0, noise, t)

    monkeypatch.setattr(stage.components.scheduler, "add_noise", spy)
    forward = stage.model.forward

    def spy_forward(*args, **kwargs):
        seen["pred"] = forward(*args, **kwargs)
        return seen["pred"]

    monkeypatch.setattr(stage.model, "forward", spy_forward)
    out = stage.loss(stage.model, batch, torch.Generator().manual_seed(0))
    t = seen["t"]
    assert t.shape == (12,) and torch.equal(t[:6], t[:1].expand(6)) and torch.equal(t[6:], t[6:7].expand(6))
    assert t[0] != t[6]  # two clips, two draws (for this seed)
    expected = torch.nn.functional.mse_loss(seen["pred"], seen["noise"])  # all 12 frames, all 8 channels
    assert torch.allclose(out.loss, expected)


@pytest.mark.parametrize("start_probability", [0.0, 1.0])
def test_motion_frames_are_ground_truth_or_the_reference_at_a_clip_start(synth_clips, monkeypatch,
                                                                         start_probability):
    from jointportrait.latent_codec import encode_rgb

    stage = MotionStage(_cfg(synth_clips, video={"start_probability": start_probability}))
    stage.prepare(torch.device("cpu"), torch.float32)
    batch = _batch(stage)
    calls = []
    original = stage.model.encode_motion_frames
    monkeypatch.setattr(stage.model, "encode_motion_frames",
                        lambda latents, ehs, n, keep=None: calls.append(latents) or original(latents, ehs, n, keep))
    stage.loss(stage.model, batch, torch.Generator().manual_seed(0))
    vae = stage.frozen["vae"]
    if start_probability == 0.0:
        expected = encode_rgb(vae, batch["motion_image"][0])  # the 2 ground-truth frames before the clip
    else:
        expected = encode_rgb(vae, batch["reference"]).expand(2, -1, -1, -1)  # the reference repeated
    assert torch.allclose(calls[0], expected, atol=1e-5)


def test_checkpointed_stage_loss_gives_the_same_gradients(synth_clips):
    grads = []
    for checkpointing in (False, True):
        stage = MotionStage(_cfg(synth_clips, train={"gradient_checkpointing": checkpointing}))
        stage.prepare(torch.device("cpu"), torch.float32)
        assert stage.model.gradient_checkpointing == checkpointing
        stage.loss(stage.model, _batch(stage), torch.Generator().manual_seed(3)).loss.backward()
        grads.append({n: p.grad for n, p in stage.model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-7, rtol=1e-5) for k in grads[0])


def test_stage3_continues_a_video_model_and_a_stage3_checkpoint(synth_clips, tmp_path):
    first = train(_cfg(synth_clips), tmp_path / "a")
    adapter = first.model.motion_adapter.state_dict()
    # init from the exported video folder: its motion adapter is kept
    stage = MotionStage(_cfg(synth_clips, model={"init_from": str(first.final_dir)}))
    assert all(torch.equal(stage.model.motion_adapter.state_dict()[k], v) for k, v in adapter.items())
    # init from a run that has only a checkpoint
    (tmp_path / "a" / "final").rename(tmp_path / "a" / "moved")
    stage = MotionStage(_cfg(synth_clips, model={"init_from": str(tmp_path / "a")}))
    assert all(torch.equal(stage.model.motion_adapter.state_dict()[k], v) for k, v in adapter.items())


def test_the_video_loss_refuses_a_non_video_model(synth_clips):
    stage = MotionStage(_cfg(synth_clips))
    with pytest.raises(TypeError, match="VideoJointDenoiser"):
        video_diffusion_loss(torch.nn.Linear(1, 1), stage.frozen["vae"], stage.components.scheduler, _batch(stage))
