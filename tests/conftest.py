"""Shared fixtures: tiny models and folders built on the fly (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))



@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny joint model folder (8-channel denoiser + ReferenceNet + VAE + scheduler)."""
    from jointportrait.loading import create_tiny_joint_model

    out = tmp_path_factory.mktemp("tiny_joint")
    create_tiny_joint_model(out, seed=0)
    return out


@pytest.fixture(scope="session")
def face_model_path() -> Path:
    """The ICT face model file shipped inside the package (what ``--face-model ict``, the default, loads)."""
    from jointportrait.face_models.ict import ICT_LIGHT_PATH

    return ICT_LIGHT_PATH


@pytest.fixture(scope="session")
def tiny_stage2_model_dir(tmp_path_factory) -> Path:
    """A saved tiny joint model whose denoiser is widened to the 18-channel stage-2 (inpainting) input."""
    from jointportrait.loading import create_tiny_joint_model
    from jointportrait.models.widen import widen_unet
    from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline

    components = create_tiny_joint_model(seed=0).components
    components["unet"] = widen_unet(components["unet"], 18, 8)
    out = tmp_path_factory.mktemp("tiny_joint_stage2")
    JointPortraitPipeline(**components).save_pretrained(out, safe_serialization=True)
    return out
