"""Building, saving and loading joint models from local files (DESIGN.md, "Fixed conventions").

Nothing is downloaded. A joint model folder is a diffusers pipeline folder:
``model_index.json``, ``unet/`` (the widened denoiser, a plain
``UNet2DConditionModel``), ``reference_unet/``, ``vae/``, ``scheduler/`` and
optionally ``image_encoder/``, weights as safetensors.

Sources: a Stable Diffusion 1.5 folder in diffusers layout (``vae/``, ``unet/``,
``scheduler/``, optional ``image_encoder/``), a single-file ``.safetensors`` SD
checkpoint (converted offline with the bundled LDM config), or a tiny random
model with the same layout for tests and trials. Only safetensors weights are
read (a pickle can run code); every folder is checked first
(:mod:`jointportrait.model_files`), so a truncated weights file or a broken JSON
file is one error naming that file. A video model (paper Sec. 5.5) is the same
folder plus ``motion_adapter/`` (a diffusers ``MotionAdapter``: a new one, or one
loaded from a MotionAdapter folder or an AnimateDiff checkpoint).
"""

from __future__ import annotations

import copy
import logging
from importlib import resources
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from jointportrait.conditioning import STAGE1_CHANNELS
from jointportrait.errors import InputError, MissingPathError
from jointportrait.model_files import (
    PICKLE_SUFFIXES,
    check_component_folder,
    check_model_folder,
    check_safetensors,
    model_load_errors,
    read_json,
)
from jointportrait.models.components import BaseComponents, ModelComponents
from jointportrait.models.mini_sd import mini_sd_unet, mini_sd_vae
from jointportrait.models.motion import build_motion_adapter, zero_motion_output
from jointportrait.models.motion_checkpoint import load_motion_adapter
from jointportrait.models.widen import widen_unet
from jointportrait.pipelines import PIPELINES, JointPortraitPipeline, JointPortraitVideoPipeline

logger = logging.getLogger(__name__)

NO_IMAGE_ENCODER = "none"  # the null embedding by choice
BASE_LAYOUT = "a Stable Diffusion 1.5 folder in diffusers layout (unet/, vae/, scheduler/; optional image_encoder/)"
VIDEO_LAYOUT = "a video model folder (a joint model folder with motion_adapter/)"
JOINT_LAYOUT = "a joint model folder (model_index.json, unet/, reference_unet/, vae/, scheduler/)"


SHIPPED_BASE = "shipped"  # --base-model / model.base name of the base shipped in the package


def shipped_base_path() -> Path:
    """The pretrained base shipped as package data (the SD 1.5 stand-in; docs/REPRODUCTION.md)."""
    path = Path(str(resources.files("jointportrait") / "assets" / "base"))
    if not (path / "model_index.json").is_file():
        raise MissingPathError(f"{path}: the shipped base is missing from this installation (reinstall jointportrait)")
    return path


def resolve_base_path(path: str | Path) -> Path:
    """``"shipped"`` -> :func:`shipped_base_path`; any other value is a path."""
    return shipped_base_path() if str(path) == SHIPPED_BASE else Path(path)


def _require_subfolders(root: Path, names: tuple[str, ...], what: str) -> None:
    if not root.exists():
        raise MissingPathError(f"{root}: no such folder; expected {what}")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; expected {what}")
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise MissingPathError(f"{root}: missing {', '.join(missing)}; expected {what}")


def sd15_scheduler() -> DDIMScheduler:
    """SD 1.5's noise schedule (scaled linear betas 0.00085-0.012 over 1000 steps) as a DDIM sampler."""
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def _scheduler_from(config: dict) -> DDIMScheduler:
    return DDIMScheduler.from_config(config)


def load_image_encoder(path: str | Path) -> CLIPVisionModelWithProjection:
    """A ``CLIPVisionModelWithProjection`` from a local folder (``config.json`` + weights)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise MissingPathError(f"{path}: expected a CLIPVisionModelWithProjection folder (config.json + "
                               "model.safetensors), e.g. the image_encoder/ of an SD image-variation model")
    check_component_folder(path)
    with model_load_errors(path, "a CLIPVisionModelWithProjection folder"):
        return CLIPVisionModelWithProjection.from_pretrained(path, local_files_only=True, use_safetensors=True)


def resolve_image_encoder(base: BaseComponents, image_encoder: str | Path | None, where: str) -> BaseComponents:
    """The base with the CLIP image encoder that conditions cross-attention on the reference (Sec. 3.2).

    ``image_encoder``: a local ``CLIPVisionModelWithProjection`` folder, ``"none"`` for the null (zero)
    embedding by choice, or None for the base's own encoder when it has one. Without any, the model
    uses the null embedding and this says so once (SD 1.5's cross-attention projections have no bias,
    so every cross-attention layer then adds a constant: the reference reaches the model through the
    ReferenceNet only).
    """
    if image_encoder == NO_IMAGE_ENCODER:
        return base.replace(image_encoder=None)
    if image_encoder is not None:
        base = base.replace(image_encoder=load_image_encoder(image_encoder))
    if base.image_encoder is None:
        logger.warning("%s has no CLIP image encoder: cross-attention gets the null embedding (give a "
                       "CLIPVisionModelWithProjection folder, or choose 'none' to silence this)", where)
        return base
    dim, expected = base.image_encoder.config.projection_dim, base.unet.config.cross_attention_dim
    if dim != expected:
        raise InputError(f"image encoder gives {dim}-d embeddings; the UNet's cross-attention expects {expected}")
    return base


def load_base_components(path: str | Path, image_encoder: str | Path | None = None) -> BaseComponents:
    """Load ``vae``, ``unet`` (4-channel), ``scheduler`` and the ``image_encoder`` from local files.

    ``image_encoder``: see :func:`resolve_image_encoder` (default: ``<path>/image_encoder/`` when present).
    ``path`` may be ``"shipped"``: the base shipped with the package.
    """
    path = resolve_base_path(path)
    if path.is_file():
        base = _load_single_file(path)
    else:
        _require_subfolders(path, ("unet", "vae", "scheduler"), BASE_LAYOUT)
        check_model_folder(path, ("unet", "vae", "scheduler", "image_encoder"))
        with model_load_errors(path, BASE_LAYOUT):
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True,
                                                        use_safetensors=True)
            vae = AutoencoderKL.from_pretrained(path, subfolder="vae", local_files_only=True, use_safetensors=True)
            scheduler = _scheduler_from(DDIMScheduler.load_config(path, subfolder="scheduler", local_files_only=True))
        encoder = load_image_encoder(path / "image_encoder") if (path / "image_encoder").exists() else None
        base = BaseComponents(unet=unet, vae=vae, scheduler=scheduler, image_encoder=encoder)
    return resolve_image_encoder(base, image_encoder, str(path))


def _load_single_file(path: Path) -> BaseComponents:
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InputError(f"{path}: pickled checkpoints are not loaded (a pickle can run code when read); "
                         "use the .safetensors file of the model")
    if path.suffix != ".safetensors":
        raise InputError(f"{path}: expected a single-file SD checkpoint (.safetensors) or {BASE_LAYOUT}")
    check_safetensors(path)
    config = str(resources.files("jointportrait") / "assets" / "v1-inference.yaml")
    try:
        unet = UNet2DConditionModel.from_single_file(str(path), original_config=config, local_files_only=True)
        vae = AutoencoderKL.from_single_file(str(path), original_config=config, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, SingleFileComponentError) as exc:
        raise InputError(f"{path}: not a loadable SD 1.x single-file checkpoint ({str(exc).splitlines()[0]})") from None
    scheduler = sd15_scheduler()
    return BaseComponents(unet=unet, vae=vae, scheduler=scheduler)


def joint_components_from_base(base: BaseComponents) -> ModelComponents:
    """Widen the base UNet to the 8-channel denoiser; the ReferenceNet starts as a copy of the base UNet."""
    unet = base.unet
    if unet.config.in_channels != 4 or unet.config.out_channels != 4:
        raise InputError(
            f"base UNet has {unet.config.in_channels}/{unet.config.out_channels} channels; expected an SD-style 4/4 UNet"
        )
    denoiser = widen_unet(unet, STAGE1_CHANNELS, STAGE1_CHANNELS)
    reference_unet = copy.deepcopy(unet)
    return ModelComponents(vae=base.vae, unet=denoiser, scheduler=base.scheduler, reference_unet=reference_unet,
                           image_encoder=base.image_encoder)


def _pipeline(components: ModelComponents, video: bool, motion_adapter: str | Path | None, seed: int,
              zero_motion: bool) -> JointPortraitPipeline | JointPortraitVideoPipeline:
    """The image pipeline of ``components``, or the video pipeline when ``video`` or ``motion_adapter``."""
    if not video and motion_adapter is None:
        return JointPortraitPipeline(**components.pipeline_kwargs())
    adapter = (load_motion_adapter(motion_adapter, components.unet) if motion_adapter is not None
               else build_motion_adapter(components.unet, seed=seed, zero_output=True))
    if zero_motion:
        zero_motion_output(adapter)
    return JointPortraitVideoPipeline(**components.pipeline_kwargs(), motion_adapter=adapter)


def create_joint_model(base_model: str | Path, out: str | Path | None = None,
                       image_encoder: str | Path | None = None, video: bool = False,
                       motion_adapter: str | Path | None = None, zero_motion: bool = False,
                       ) -> JointPortraitPipeline | JointPortraitVideoPipeline:
    """Build a :class:`JointPortraitPipeline` from a local SD 1.5 model; save it to ``out`` if given.

    ``image_encoder``: a local CLIP vision folder, ``"none"``, or None (see :func:`resolve_image_encoder`).
    ``video`` / ``motion_adapter``: a :class:`JointPortraitVideoPipeline` with a new motion adapter (zero
    output: it starts as the image model) or the one at ``motion_adapter`` (a MotionAdapter folder or an
    AnimateDiff checkpoint; ``zero_motion`` zeroes its output).
    """
    base = load_base_components(base_model, image_encoder)
    pipe = _pipeline(joint_components_from_base(base), video, motion_adapter, 0, zero_motion)
    if out is not None:
        pipe.save_pretrained(out, safe_serialization=True)
    return pipe


def tiny_base_components(seed: int = 0, sample_size: int = 8, with_image_encoder: bool = False,
                         cross_attention_dim: int = 32) -> BaseComponents:
    """A tiny randomly initialised SD-layout model: UNet (32, 64), 4-level VAE (64 px -> 8 latent px).

    The weights are a function of ``seed`` alone; the global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _tiny_base(sample_size, with_image_encoder, cross_attention_dim)


def mini_base_components(seed: int = 0, image_size: int = 64, vae: AutoencoderKL | None = None) -> BaseComponents:
    """A randomly initialised model in the layout of the shipped base (:mod:`jointportrait.models.mini_sd`)
    for ``image_size`` px images; ``vae`` replaces the random autoencoder (e.g. a trained one)."""
    vae = vae if vae is not None else mini_sd_vae(sample_size=image_size, seed=seed)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return BaseComponents(unet=mini_sd_unet(sample_size=image_size // factor, seed=seed), vae=vae,
                          scheduler=sd15_scheduler())


def _tiny_base(sample_size: int, with_image_encoder: bool, cross_attention_dim: int) -> BaseComponents:
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=sample_size * 8,
    )
    scheduler = sd15_scheduler()
    image_encoder = None
    if with_image_encoder:
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=32, patch_size=8, projection_dim=cross_attention_dim,
        ))
    return BaseComponents(unet=unet, vae=vae, scheduler=scheduler, image_encoder=image_encoder)


def create_tiny_joint_model(out: str | Path | None = None, seed: int = 0, with_image_encoder: bool = False,
                            video: bool = False, motion_adapter: str | Path | None = None,
                            zero_motion: bool = False) -> JointPortraitPipeline | JointPortraitVideoPipeline:
    """A small random joint model with the real layout (for tests and trying the pipelines without weights);
    with ``video`` or ``motion_adapter`` a video model (see :func:`create_joint_model`)."""
    base = tiny_base_components(seed=seed, with_image_encoder=with_image_encoder)
    pipe = _pipeline(joint_components_from_base(base), video, motion_adapter, seed, zero_motion)
    if out is not None:
        pipe.save_pretrained(out, safe_serialization=True)
    return pipe


def is_video_model_folder(path: Path) -> bool:
    """Whether ``path`` is a video model folder (its ``model_index.json`` names the video pipeline)."""
    index = path / "model_index.json"
    if not index.is_file():
        return False
    recorded = read_json(index)
    return isinstance(recorded, dict) and recorded.get("_class_name") == JointPortraitVideoPipeline.__name__


def load_joint_pipeline(path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> JointPortraitPipeline:
    """Load a saved joint model folder as a :class:`JointPortraitPipeline` (of a video model folder: the image
    pipeline over its modules)."""
    path = Path(path)
    _require_subfolders(path, ("model_index.json", "unet", "reference_unet", "vae", "scheduler"), JOINT_LAYOUT)
    if is_video_model_folder(path):
        return load_video_pipeline(path, device, dtype).image_pipeline()
    check_model_folder(path, ("unet", "reference_unet", "vae", "scheduler", "image_encoder"))
    with model_load_errors(path, JOINT_LAYOUT):
        pipe = JointPortraitPipeline.from_pretrained(path, dtype=dtype, local_files_only=True, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_video_pipeline(path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> JointPortraitVideoPipeline:
    """Load a saved video model folder (a joint model folder with ``motion_adapter/``), motion weights strictly."""
    path = Path(path)
    _require_subfolders(path, ("model_index.json", "unet", "reference_unet", "vae", "scheduler"), JOINT_LAYOUT)
    if not is_video_model_folder(path) or not (path / "motion_adapter").is_dir():
        raise MissingPathError(f"{path}: not a video model (no motion_adapter/); make one with "
                               "jointportrait create --video or train stage 3 (model.kind: motion)")
    check_model_folder(path, ("unet", "reference_unet", "vae", "scheduler", "image_encoder", "motion_adapter"))
    with model_load_errors(path, VIDEO_LAYOUT):
        pipe = JointPortraitVideoPipeline.from_pretrained(path, dtype=dtype, local_files_only=True,
                                                          use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_joint_components(path: str | Path) -> ModelComponents:
    """The parts of a saved joint model folder, loaded one by one (no pipeline is built, so the
    reference-attention processors are installed once, by whoever builds the denoiser)."""
    path = Path(path)
    _require_subfolders(path, ("model_index.json", "unet", "reference_unet", "vae", "scheduler"), JOINT_LAYOUT)
    check_model_folder(path, ("unet", "reference_unet", "vae", "scheduler", "image_encoder"))
    with model_load_errors(path, JOINT_LAYOUT):
        image_encoder = None
        if (path / "image_encoder").is_dir():
            image_encoder = CLIPVisionModelWithProjection.from_pretrained(
                path / "image_encoder", local_files_only=True, use_safetensors=True)
        return ModelComponents(
            vae=AutoencoderKL.from_pretrained(path / "vae", local_files_only=True, use_safetensors=True),
            unet=UNet2DConditionModel.from_pretrained(path / "unet", local_files_only=True, use_safetensors=True),
            scheduler=_scheduler_from(DDIMScheduler.load_config(path / "scheduler", local_files_only=True)),
            reference_unet=UNet2DConditionModel.from_pretrained(path / "reference_unet", local_files_only=True,
                                                                use_safetensors=True),
            image_encoder=image_encoder,
        )


def load_pipeline(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Any saved model folder of the project (joint model or baseline), by the class its
    ``model_index.json`` records (:data:`jointportrait.pipelines.PIPELINES`)."""
    path = Path(path)
    index = path / "model_index.json"
    if not index.is_file():
        raise MissingPathError(f"{path}: no model_index.json; expected a model folder written by "
                               "jointportrait create or train")
    check_model_folder(path)
    content = read_json(index)
    name = content.get("_class_name") if isinstance(content, dict) else None
    if name not in PIPELINES:
        raise InputError(f"{index}: unknown pipeline class {name!r}; expected one of {', '.join(PIPELINES)}")
    with model_load_errors(path, f"a {name} folder"):
        pipe = PIPELINES[name].from_pretrained(path, dtype=dtype, local_files_only=True, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
