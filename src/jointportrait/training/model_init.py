"""Where a run's model starts (paper Sec. 3.3, 4, 7.2): a base SD model, a replaced VAE, or a previous run.

Stage 1 widens a base model (``model.base``: ``tiny`` or a local SD 1.5) to the
8-channel joint denoiser; stage 2 starts from a stage-1 run (``model.init_from``:
its ``final/`` export, its latest checkpoint, or any joint model folder) and
widens the denoiser to 18 input channels (the new channels start at zero, so
the widened model starts as the stage-1 model). ``model.vae`` swaps in a VAE
trained by the VAE stage.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from jointportrait.errors import MissingPathError
from jointportrait.loading import (
    joint_components_from_base,
    load_base_components,
    load_joint_components,
    mini_base_components,
    resolve_image_encoder,
    tiny_base_components,
)
from jointportrait.model_files import check_component_folder, model_load_errors
from jointportrait.models.components import BaseComponents, ModelComponents
from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.widen import widen_unet
from jointportrait.training.checkpoint import latest_intact_checkpoint
from jointportrait.training.config import RunConfig, config_from_dict

logger = logging.getLogger(__name__)


def load_vae(path: str | Path) -> AutoencoderKL:
    """An ``AutoencoderKL`` from a diffusers folder, or from a VAE-stage run folder (its ``final/``)."""
    path = Path(path)
    if (path / "final" / "config.json").exists():
        path = path / "final"
    if not (path / "config.json").exists():
        raise MissingPathError(f"model.vae {path}: expected an AutoencoderKL folder (config.json + weights) "
                               "or a VAE-stage run folder with final/")
    check_component_folder(path)
    with model_load_errors(path, "an AutoencoderKL folder"):
        return AutoencoderKL.from_pretrained(path, local_files_only=True, use_safetensors=True)


def build_base_components(cfg: RunConfig) -> BaseComponents:
    """Base SD components (``model.base``: ``tiny``, ``mini`` or a local SD 1.5 folder such as the shipped
    base), with ``model.vae`` swapped in if given."""
    m = cfg.model
    vae = load_vae(m.vae) if m.vae is not None else None
    if m.base == "tiny":
        factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8
        base = tiny_base_components(seed=m.tiny_seed, sample_size=cfg.data.resolution // factor)
        if m.image_encoder is not None:  # the tiny model has none of its own; no warning unless one is asked for
            base = resolve_image_encoder(base, m.image_encoder, "model.image_encoder")
    elif m.base == "mini":
        base = mini_base_components(seed=m.tiny_seed, image_size=cfg.data.resolution, vae=vae)
        if m.image_encoder is not None:
            base = resolve_image_encoder(base, m.image_encoder, "model.image_encoder")
    else:
        base = load_base_components(m.base, m.image_encoder)
    return base if vae is None else base.replace(vae=vae)


def resolve_init_from(path: str | Path) -> Path:
    """A joint model folder, or a run folder: its ``final/``, else its newest intact (hash-verified) checkpoint."""
    path = Path(path)
    if (path / "model_index.json").exists():
        return path
    if (path / "final" / "model_index.json").exists():
        return path / "final"
    latest = latest_intact_checkpoint(path)  # a newer corrupt checkpoint is named in a warning and skipped
    if latest is not None and (path / "config.yaml").exists():
        return latest
    raise MissingPathError(f"model.init_from {path}: expected a joint model folder or a training run "
                           "folder (with final/ or checkpoint-*/ and config.yaml)")


def _joint_components_from_checkpoint(run_dir: Path, checkpoint: Path) -> ModelComponents:
    """Rebuild the run's model from its frozen config, then load the checkpoint's model weights."""
    cfg = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    parts = build_joint_components(cfg)
    weights = checkpoint / "model.safetensors"
    if not weights.exists():
        raise MissingPathError(f"{checkpoint}: no model.safetensors")
    model = JointDenoiser(parts.unet, parts.reference_unet)
    state = {k.removeprefix("module."): v for k, v in load_file(str(weights)).items()}  # DDP-saved keys
    model.load_state_dict(state)
    return parts


def build_joint_components(cfg: RunConfig) -> ModelComponents:
    """The joint model's parts: ``unet`` with ``model.in_channels`` inputs, ``reference_unet``, frozen parts."""
    m = cfg.model
    if m.init_from is not None:
        source = resolve_init_from(m.init_from)
        if (source / "model_index.json").exists():
            parts = load_joint_components(source)
        else:
            parts = _joint_components_from_checkpoint(source.parent, source)
        logger.info("initialised from %s", source)
    else:
        parts = joint_components_from_base(build_base_components(cfg))
    unet = parts.unet
    if unet.config.in_channels < m.in_channels:
        parts = parts.replace(unet=widen_unet(unet, m.in_channels, unet.config.out_channels))
    elif unet.config.in_channels > m.in_channels:
        raise MissingPathError(f"model.in_channels: {m.in_channels}, but the initial denoiser already has "
                               f"{unet.config.in_channels} input channels")
    return parts
