"""Model kinds of the trainer: builder + loss + export per ``model.kind`` (paper Sec. 3.2-4).

A stage is configuration: stage 1 builds the 8-channel joint denoiser from a
base SD model; stage 2 loads a stage-1 run (``model.init_from``) and widens
its denoiser to 18 input channels (DESIGN.md order; the new channels start at
zero, so the widened model starts as the stage-1 model). Other kinds (the
ablation baselines) register a builder and a loss of the same signatures in
:data:`MODEL_KINDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from jointportrait.errors import MissingPathError
from jointportrait.model_files import check_component_folder, model_load_errors
from jointportrait.objective import joint_diffusion_loss
from jointportrait.training.config import RunConfig, config_from_dict

logger = logging.getLogger(__name__)


@dataclass
class Components:
    """What the trainer needs: ``model`` trains; ``vae``/``image_encoder`` stay frozen."""

    model: torch.nn.Module  # a JointDenoiser (unet + reference_unet)
    vae: torch.nn.Module
    scheduler: object
    image_encoder: torch.nn.Module | None


def _joint_components_from_folder(path: Path) -> dict:
    from jointportrait.loading import load_joint_pipeline

    pipe = load_joint_pipeline(path)
    return {"vae": pipe.vae, "unet": pipe.unet, "reference_unet": pipe.reference_unet,
            "scheduler": pipe.scheduler, "image_encoder": pipe.image_encoder}


def _joint_components_from_checkpoint(run_dir: Path, checkpoint: Path) -> dict:
    """Rebuild the run's model from its frozen config, then load the checkpoint's model weights."""
    from safetensors.torch import load_file

    cfg = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    parts = build_joint_components(cfg)
    weights = checkpoint / "model.safetensors"
    if not weights.exists():
        raise MissingPathError(f"{checkpoint}: no model.safetensors")
    model = _joint_model(parts)
    state = {k.removeprefix("module."): v for k, v in load_file(str(weights)).items()}  # DDP-saved keys
    model.load_state_dict(state)
    return parts


def resolve_init_from(path: str | Path) -> Path:
    """A joint model folder, or a run folder: its ``final/``, else its newest intact (hash-verified) checkpoint."""
    from jointportrait.training.checkpoint import latest_intact_checkpoint as latest_checkpoint

    path = Path(path)
    if (path / "model_index.json").exists():
        return path
    if (path / "final" / "model_index.json").exists():
        return path / "final"
    latest = latest_checkpoint(path)
    if latest is not None and (path / "config.yaml").exists():
        return latest
    raise MissingPathError(f"model.init_from {path}: expected a joint model folder or a training run "
                           "folder (with final/ or checkpoint-*/ and config.yaml)")


def build_joint_components(cfg: RunConfig) -> dict:
    """``vae``, ``unet`` (``model.in_channels`` inputs), ``reference_unet``, ``scheduler``, ``image_encoder``."""
    from jointportrait.loading import joint_components_from_base
    from jointportrait.models.widen import widen_unet

    m = cfg.model
    if m.init_from is not None:
        source = resolve_init_from(m.init_from)
        if (source / "model_index.json").exists():
            parts = _joint_components_from_folder(source)
        else:
            parts = _joint_components_from_checkpoint(source.parent, source)
        logger.info("initialised from %s", source)
    else:
        parts = joint_components_from_base(build_base_components(cfg))
    unet = parts["unet"]
    if unet.config.in_channels < m.in_channels:
        parts["unet"] = widen_unet(unet, m.in_channels, unet.config.out_channels)
    elif unet.config.in_channels > m.in_channels:
        raise MissingPathError(f"model.in_channels: {m.in_channels}, but the initial denoiser already has "
                               f"{unet.config.in_channels} input channels")
    return parts


def load_vae(path: str | Path):
    """An ``AutoencoderKL`` from a diffusers folder, or from a VAE-stage run folder (its ``final/``)."""
    from diffusers import AutoencoderKL

    path = Path(path)
    if (path / "final" / "config.json").exists():
        path = path / "final"
    if not (path / "config.json").exists():
        raise MissingPathError(f"model.vae {path}: expected an AutoencoderKL folder (config.json + weights) "
                               "or a VAE-stage run folder with final/")
    check_component_folder(path)
    with model_load_errors(path, "an AutoencoderKL folder"):
        return AutoencoderKL.from_pretrained(path, local_files_only=True, use_safetensors=True)


def build_base_components(cfg: RunConfig) -> dict:
    """Base SD components (``model.base``: ``tiny`` or a local SD 1.5), with ``model.vae`` swapped in if given."""
    from jointportrait.loading import load_base_components, tiny_base_components

    m = cfg.model
    vae = load_vae(m.vae) if m.vae is not None else None
    if m.base == "tiny":
        factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8
        base = tiny_base_components(seed=m.tiny_seed, sample_size=cfg.data.resolution // factor)
    else:
        base = load_base_components(m.base)
    if vae is not None:
        base["vae"] = vae
    return base


def _joint_model(parts: dict) -> torch.nn.Module:
    from jointportrait.models.joint_denoiser import JointDenoiser

    return JointDenoiser(parts["unet"], parts["reference_unet"])


def build_joint(cfg: RunConfig) -> Components:
    parts = build_joint_components(cfg)
    return Components(_joint_model(parts), parts["vae"], parts["scheduler"], parts["image_encoder"])


def export_joint(components: Components, model: torch.nn.Module, out: Path) -> None:
    """Save ``model`` (an unwrapped JointDenoiser) with the frozen parts as a ``JointPortraitPipeline`` folder."""
    from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline

    pipe = JointPortraitPipeline(vae=components.vae, unet=model.unet, reference_unet=model.reference_unet,
                                 scheduler=components.scheduler, image_encoder=components.image_encoder)
    pipe.save_pretrained(out, safe_serialization=True)


@dataclass
class ModelKind:
    build: Callable[[RunConfig], Components]
    loss: Callable[..., object]  # (model, vae, scheduler, batch, image_encoder=, reference_dropout=, ...) -> .loss
    export: Callable[[Components, torch.nn.Module, Path], None]
    validates: bool = True  # the trainer's validation grid samples a JointPortraitPipeline


def build_vae_stage(cfg: RunConfig) -> Components:
    """``model.kind: vae``: the autoencoder itself trains (see :mod:`jointportrait.training.vae_stage`)."""
    from jointportrait.training.vae_stage import VAETrainingModule, tiny_vae

    m = cfg.model
    if m.vae is not None:
        vae = load_vae(m.vae)
    elif m.base == "tiny":
        vae = tiny_vae(levels=m.vae_levels, seed=m.tiny_seed, sample_size=cfg.data.resolution)
    else:
        vae = build_base_components(cfg)["vae"]
    return Components(VAETrainingModule(vae, train_encoder=m.vae_train_encoder), None, None, None)


def export_vae_stage(components: Components, model: torch.nn.Module, out: Path) -> None:
    from jointportrait.training.vae_stage import export_vae

    export_vae(model, out)


def _baseline_builder(kind: str) -> Callable[[RunConfig], Components]:
    def build(cfg: RunConfig) -> Components:
        from jointportrait.models.baselines import baseline_components_from_base, build_baseline_model

        parts = baseline_components_from_base(build_base_components(cfg), kind)
        return Components(build_baseline_model(parts), parts["vae"], parts["scheduler"], parts["image_encoder"])

    return build


def _baseline_exporter(kind: str) -> Callable[[Components, torch.nn.Module, Path], None]:
    def export(components: Components, model: torch.nn.Module, out: Path) -> None:
        from jointportrait.models.baselines import save_baseline

        save_baseline({"kind": kind, "unet": model.unet, "reference_unet": getattr(model, "reference_unet", None),
                       "vae": components.vae, "scheduler": components.scheduler}, out)

    return export


def _model_kinds() -> dict[str, ModelKind]:
    from jointportrait.models.baselines import BASELINES
    from jointportrait.training.vae_stage import vae_loss

    kinds = {
        "joint": ModelKind(build=build_joint, loss=joint_diffusion_loss, export=export_joint),
        "vae": ModelKind(build=build_vae_stage, loss=vae_loss, export=export_vae_stage, validates=False),
    }
    for name, spec in BASELINES.items():  # the paper's baselines and ablations (Sec. 5.2, 9)
        kinds[name] = ModelKind(build=_baseline_builder(name), loss=spec.loss, export=_baseline_exporter(name),
                                validates=False)
    return kinds


# model.kind -> builder, loss, export (explicit registry)
MODEL_KINDS: dict[str, ModelKind] = _model_kinds()
