"""The models learn, in seconds: a tiny model trained by the project's trainer overfits a handful of portraits,
and its depth estimate then beats the mean-depth prior on them (the full demo's version is marked slow)."""

from __future__ import annotations

import numpy as np
import torch
from accelerate.state import AcceleratorState
from PIL import Image

from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.data.datasets import FrameDataset
from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.demo.evaluate import mean_depth_prior
from jointportrait.evaluation import depth_metrics
from jointportrait.face_models import load_face_model
from jointportrait.loading import load_joint_pipeline
from jointportrait.training.config import config_from_dict
from jointportrait.training.trainer import train


def _config(kind: str, data, steps: int, learning_rate: float, **model) -> dict:
    return config_from_dict({
        "model": {"kind": kind, "base": "tiny", "prediction_type": None if kind == "vae" else "v_prediction", **model},
        "data": {"root": str(data), "resolution": 32, "cache_latents": True},
        "optim": {"learning_rate": learning_rate, "weight_decay": 0.0},
        "train": {"batch_size": 4, "gradient_accumulation_steps": 1, "max_steps": steps, "checkpoint_every": steps,
                  "reference_dropout": 0.0},
        "masks": {"tasks": {"depth_estimation": 1.0}},
        "validation": {"every": 0},
    })


def test_a_tiny_model_overfits_four_portraits_and_its_depth_beats_the_mean_depth_prior(tmp_path):
    data = tmp_path / "data"  # 2 subjects x 2 frames, 32 px, procedural heads
    write_dataset(data, load_face_model("procedural"), SynthConfig(subjects=2, frames_per_subject=2, size=32, seed=0,
                                                           val_fraction=0.0, test_fraction=0.0))
    # no pretrained VAE here: a 3-level autoencoder first (8x8 latents), then the 18-channel model on depth
    # estimation only (masks rgb 0 / depth 1), as the demo does at larger scale
    train(_config("vae", data, 100, 3e-3, vae_levels=3), tmp_path / "vae")
    AcceleratorState._reset_state(reset_partial_state=True)
    result = train(_config("joint", data, 300, 5e-3, vae=str(tmp_path / "vae"), in_channels=18), tmp_path / "joint")
    assert result.losses[-1] < 0.5 * result.losses[0]

    pipe = load_joint_pipeline(result.final_dir)
    pipe.set_progress_bar_config(disable=True)
    frames = FrameDataset(data, size=32)
    prior = mean_depth_prior(frames)  # (H, W) mean normalised training depth
    ours, trivial = [], []
    for i in range(len(frames)):
        item = frames[i]
        photo = Image.fromarray(((item["image"] + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy())
        estimate = estimate_depth(pipe, photo, num_inference_steps=1, generator=torch.Generator().manual_seed(i))
        gt, valid = item["depth_raw"][0].numpy(), item["valid"][0].numpy() > 0.5
        mask = valid & (item["skin_mask"][0].numpy() > 0.5)
        ours.append(depth_metrics(estimate.depth, gt, mask)["abs_rel"])  # aligned AbsRel, as in the demo
        trivial.append(depth_metrics(prior, gt, mask)["abs_rel"])
    # A model that ignores the photo scores the prior's figure. This tiny run is chaotic: its outcome moves with
    # the CPU's kernels. With 150 steps it measured 0.74x the prior on one machine and 0.91-0.96x on an AVX2 one
    # (0.998x with ATEN_CPU_CAPABILITY=default); with 300 steps, on the AVX2 machine, 0.78x (2 threads), 0.67x
    # (1 thread) and 0.82x (ATEN_CPU_CAPABILITY=default).
    assert np.mean(ours) < 0.9 * np.mean(trivial), (ours, trivial)
