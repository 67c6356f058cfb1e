"""Where a run's model starts (paper Sec. 3.3, 4, 7.2): a base SD model, a replaced VAE, or a previous run.

Stage 1 widens a base model (``model.base``: ``tiny`` or a local SD 1.5) to the
8-channel joint denoiser; stage 2 starts from a stage-1 run (``model.init_from``:
its ``final/`` export, its latest checkpoint, or any joint model folder) and
widens the denoiser to 18 input channels (the new channels start at zero, so
the widened model starts as the stage-1 model). ``model.vae`` swaps in a VAE
trained by the VAE stage. Stage 3 (``model.kind: motion``) adds a motion adapter to
the model of ``model.init_from`` (:func:`build_video_components`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from diffusers import AutoencoderKL, MotionAdapter
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
from jointportrait.models.motion import build_motion_adapter, zero_motion_output
from jointportrait.models.motion_checkpoint import load_motion_adapter
from jointportrait.models.video_denoiser import VideoJointDenoiser
from jointportrait.models.widen import widen_unet
from jointportrait.training.checkpoint import latest_intact_checkpoint
from jointportrait.training.config import ConfigError, RunConfig, config_from_dict

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


def _checkpoint_state(checkpoint: Path) -> dict:
    weights = checkpoint / "model.safetensors"
    if not weights.exists():
        raise MissingPathError(f"{checkpoint}: no model.safetensors")
    return {k.removeprefix("module."): v for k, v in load_file(str(weights)).items()}  # DDP-saved keys


def _components_from_checkpoint(run_dir: Path, checkpoint: Path) -> tuple[ModelComponents, MotionAdapter | None]:
    """Rebuild the run's model from its frozen config, then load the checkpoint's model weights (a stage-3
    run's checkpoint holds its motion adapter too)."""
    cfg = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    if cfg.model.kind == "motion":
        parts, adapter = build_video_components(cfg)
        VideoJointDenoiser(parts.unet, parts.reference_unet, adapter).load_state_dict(_checkpoint_state(checkpoint))
        return parts, adapter
    parts = build_joint_components(cfg)
    JointDenoiser(parts.unet, parts.reference_unet).load_state_dict(_checkpoint_state(checkpoint))
    return parts, None


def _initial_components(cfg: RunConfig) -> tuple[ModelComponents, MotionAdapter | None]:
    """The parts ``model.init_from`` gives (and its motion adapter, when it is a video model), or a base's."""
    m = cfg.model
    if m.init_from is None:
        return joint_components_from_base(build_base_components(cfg)), None
    source = resolve_init_from(m.init_from)
    logger.info("initialised from %s", source)
    if (source / "model_index.json").exists():
        adapter = load_motion_adapter(source / "motion_adapter") if (source / "motion_adapter").is_dir() else None
        return load_joint_components(source), adapter
    return _components_from_checkpoint(source.parent, source)


def build_joint_components(cfg: RunConfig) -> ModelComponents:
    """The joint model's parts: ``unet`` with ``model.in_channels`` inputs, ``reference_unet``, frozen parts."""
    return _widened(cfg, _initial_components(cfg)[0])


def build_video_components(cfg: RunConfig) -> tuple[ModelComponents, MotionAdapter]:
    """Stage 3's parts (Sec. 5.1, 7.2): the joint model of ``model.init_from`` (or of the base) and a motion
    adapter: ``model.motion_adapter`` (a MotionAdapter folder or an AnimateDiff checkpoint), else the init
    model's own, else a new one with zero output; ``model.zero_motion_output`` zeroes a loaded one's output."""
    m = cfg.model
    parts, adapter = _initial_components(cfg)
    parts = _widened(cfg, parts)
    if m.motion_adapter is not None:
        adapter = load_motion_adapter(m.motion_adapter, parts.unet)
    elif adapter is None:
        adapter = build_motion_adapter(parts.unet, seed=m.tiny_seed, zero_output=True)
        logger.info("new motion adapter with zero output: the video model starts as the image model")
    if m.zero_motion_output:
        zero_motion_output(adapter)
    frames = cfg.video.num_frames + cfg.video.motion_frames
    if frames > adapter.config.motion_max_seq_length:
        raise ConfigError(f"video.num_frames + video.motion_frames = {frames} exceeds the motion adapter's "
                               f"{adapter.config.motion_max_seq_length} positions")
    return parts, adapter


def _widened(cfg: RunConfig, parts: ModelComponents) -> ModelComponents:
    """``parts`` with the denoiser widened to ``model.in_channels`` (new channels zero)."""
    m = cfg.model
    unet = parts.unet
    if unet.config.in_channels < m.in_channels:
        parts = parts.replace(unet=widen_unet(unet, m.in_channels, unet.config.out_channels))
    elif unet.config.in_channels > m.in_channels:
        raise MissingPathError(f"model.in_channels: {m.in_channels}, but the initial denoiser already has "
                               f"{unet.config.in_channels} input channels")
    return parts
