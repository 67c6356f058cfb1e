"""Typed training configuration (paper Sec. 5.1, supplementary 7.2; STYLE.md habit 9).

A run is described by one YAML file under ``configs/train/`` loaded into the
dataclasses below. Loading validates every key: an unknown key or a value of
the wrong type is a :class:`~jointportrait.errors.JointPortraitError` that
names the key (``train.max_steps: expected int, got 'many'``). ``--set
a.b=value`` overrides are parsed as YAML scalars and validated the same way.
The resolved configuration is frozen into the run folder as ``config.yaml``;
``--resume`` reads that frozen copy, so a resumed run is the same run.

The stages differ only here: stage 1 trains an 8-channel denoiser from a base
model, stage 2 sets ``model.in_channels: 18`` and ``model.init_from`` (a
stage-1 run) and turns on the mask sampler (``masks``), stage 3 sets
``model.kind: motion`` and reads clips (``video``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from jointportrait.conditioning import TASKS
from jointportrait.errors import InputError, MissingPathError
from jointportrait.training.masks import SPATIAL_MASKS


class ConfigError(InputError):
    """A configuration key is unknown, missing or has the wrong type or value."""


@dataclass
class DatasetSource:
    """One dataset folder of the training mix (dataset contract: ``manifest.jsonl``)."""

    root: str
    weight: float = 1.0  # sampling weight in the mix (normalised over sources)
    source: str | None = None  # keep only records with this ``source`` (studio | wild); None = all


@dataclass
class DataConfig:
    root: str | None = None  # one dataset folder; or list several in ``datasets``
    datasets: list[DatasetSource] = field(default_factory=list)
    resolution: int = 512  # square crops, multiple of 8
    split: str = "train"
    val_split: str = "val"
    num_workers: int = 0
    # hold the training set in memory with its VAE latents encoded once (training/latent_cache.py);
    # for small sets (the demo's): every item is read and encoded before the first step
    cache_latents: bool = False


@dataclass
class ModelConfig:
    # training stage (training.stages.STAGES): the joint model (stage 1 or 2 by in_channels), the VAE, a baseline
    kind: Literal["joint", "vae", "base", "image_to_depth", "depth_to_image", "concat_reference", "one_step_depth",
                  "motion"] = "joint"
    # "tiny" (random tiny SD layout), "mini" (random layout of the shipped base, models/mini_sd.py; for
    # model.kind vae / base), or a local SD 1.5 folder / single-file checkpoint (the shipped base is one)
    base: str = "tiny"
    tiny_seed: int = 0
    init_from: str | None = None  # stage 2: a stage-1 run folder (final/ or latest checkpoint) or model folder
    in_channels: Literal[8, 18] = 8  # 8 = stage 1, 18 = inpainting fine-tune (stage 2)
    freeze_unread_reference: bool = True  # freeze ReferenceNet parameters that feed no reader (DDP)
    prediction_type: Literal["epsilon", "v_prediction"] | None = None  # None: the scheduler's
    vae: str | None = None  # replace the base VAE: an AutoencoderKL folder, or a VAE-stage run (its final/)
    # CLIP image encoder of the reference (cross-attention, Sec. 3.2): a local CLIPVisionModelWithProjection
    # folder, "none" for the null embedding by choice, or None: the base's image_encoder/ if it has one
    image_encoder: str | None = None
    vae_levels: int = 3  # model.kind vae with base tiny: resolutions of the new autoencoder (3: 64 px -> 16)
    vae_train_encoder: bool = True  # model.kind vae: False fine-tunes the decoder only (keeps SD's latent space)
    vae_train_depth: bool = True  # model.kind vae: False trains on RGB images only (as SD's VAE was)
    # model.kind motion (stage 3): a MotionAdapter folder or an AnimateDiff checkpoint; None: the init_from
    # model's motion_adapter/ when it has one, else a new adapter with zero output (starts as the image model)
    motion_adapter: str | None = None
    zero_motion_output: bool = False  # zero the loaded adapter's proj_out: the video model starts as the image model


@dataclass
class OptimConfig:
    learning_rate: float = 1e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0  # 0 disables clipping
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    lr_warmup_steps: int = 0


@dataclass
class EMAConfig:
    enabled: bool = False
    decay: float = 0.9999
    update_after_step: int = 0


@dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 4  # per process; effective batch = batch_size * gradient_accumulation_steps * processes
    gradient_accumulation_steps: int = 8
    max_steps: int = 30_000  # optimizer steps
    max_minutes: float | None = None  # also stop (checkpoint, export) after this many minutes of this process's loop
    # also stop (checkpoint, export) at this step, the LR schedule still spanning max_steps: repeats a run that
    # train.max_minutes stopped early, on any machine
    stop_at_step: int | None = None
    checkpoint_every: int = 1000
    checkpoints_total_limit: int = 3  # keep the last K complete checkpoints
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    reference_dropout: float = 0.1  # drops ReferenceNet features + image embedding (classifier-free guidance)
    nonfinite_loss: Literal["stop", "skip"] = "stop"
    log_every: int = 10
    ema: EMAConfig = field(default_factory=EMAConfig)


@dataclass
class MaskConfig:
    """Stage 2 task mix (paper Sec. 4): weights of the asymmetric domain masks and of the spatial masks."""

    tasks: dict[str, float] = field(default_factory=lambda: {
        "depth_estimation": 1.0, "depth_to_image": 1.0, "joint_generation": 1.0,
        "rgb_editing": 0.5, "joint_editing": 0.5,
    })
    spatial: dict[str, float] = field(default_factory=lambda: {"box": 1.0, "brush": 1.0, "face": 1.0})


@dataclass
class VideoConfig:
    """Stage 3 clips (paper Sec. 5.1, supplementary 7.1-7.2): ``num_frames`` generated at once, the
    ``motion_frames`` ground-truth frames before them as motion frames."""

    num_frames: int = 14
    motion_frames: int = 4
    # a clip drawn as the start of a video: its motion frames are the reference repeated (the inference rule)
    start_probability: float = 0.1
    stride: int | None = None  # frames between window starts (default: num_frames)


@dataclass
class ValidationConfig:
    every: int = 1000  # steps; 0 disables
    num_references: int = 2
    num_inference_steps: int = 25
    guidance_scale: float = 1.0
    seed: int = 0


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def dataset_sources(self) -> list[DatasetSource]:
        """``data.datasets`` when given, else the single ``data.root``."""
        if self.data.datasets:
            return list(self.data.datasets)
        return [DatasetSource(root=self.data.root)] if self.data.root else []


# ----------------------------------------------------------------- conversion
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp``; raises :class:`ConfigError` naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or type(value) is bool and bool not in {type(a) for a in allowed}:
            raise ConfigError(f"{key}: expected one of {list(allowed)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_convert(k, kt, key): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key {where}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing config key {key}")
    return cls(**kwargs)


def _validate(cfg: RunConfig) -> RunConfig:
    checks = [
        (cfg.data.resolution > 0 and cfg.data.resolution % 8 == 0, "data.resolution: expected a positive multiple of 8"),
        (cfg.train.batch_size >= 1, "train.batch_size: expected >= 1"),
        (cfg.train.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps: expected >= 1"),
        (cfg.train.max_steps >= 1, "train.max_steps: expected >= 1"),
        (cfg.train.stop_at_step is None or cfg.train.stop_at_step >= 1, "train.stop_at_step: expected >= 1"),
        (cfg.train.checkpoint_every >= 1, "train.checkpoint_every: expected >= 1"),
        (cfg.train.checkpoints_total_limit >= 1, "train.checkpoints_total_limit: expected >= 1"),
        (0.0 <= cfg.train.reference_dropout < 1.0, "train.reference_dropout: expected a value in [0, 1)"),
        (0.0 < cfg.train.ema.decay < 1.0, "train.ema.decay: expected a value in (0, 1)"),
        (cfg.optim.learning_rate > 0, "optim.learning_rate: expected > 0"),
        (cfg.validation.every >= 0, "validation.every: expected >= 0"),
        (all(s.weight > 0 for s in cfg.data.datasets), "data.datasets: every weight must be > 0"),
        (cfg.video.num_frames >= 1, "video.num_frames: expected >= 1"),
        (cfg.video.motion_frames >= 0, "video.motion_frames: expected >= 0"),
        (0.0 <= cfg.video.start_probability <= 1.0, "video.start_probability: expected a value in [0, 1]"),
        (cfg.video.stride is None or cfg.video.stride >= 1, "video.stride: expected >= 1"),
        (not (cfg.model.kind == "motion" and cfg.data.cache_latents),
         "data.cache_latents: not supported for clips (model.kind motion)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for name, registry, what in (("masks.tasks", TASKS, cfg.masks.tasks), ("masks.spatial", SPATIAL_MASKS, cfg.masks.spatial)):
        unknown = sorted(set(what) - set(registry))
        if unknown:
            raise ConfigError(f"{name}.{unknown[0]}: unknown (known: {', '.join(sorted(registry))})")
        if any(w < 0 for w in what.values()) or sum(what.values()) <= 0:
            raise ConfigError(f"{name}: weights must be >= 0 with a positive sum")
    return cfg


# --------------------------------------------------------------------- public
def config_from_dict(data: dict) -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (e.g. parsed YAML)."""
    return _validate(_build(RunConfig, data or {}))


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to nested plain data, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config file, apply ``--set`` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return config_from_dict(apply_overrides(data, list(overrides)))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Freeze the resolved configuration (every key, defaults included) as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
