"""Motion-module weights from local files, strictly (paper Sec. 5.1: "the weights of the motion module are
initialized from AnimateDiff").

Two sources load into a diffusers :class:`~diffusers.MotionAdapter`:

- a ``MotionAdapter`` folder as ``save_pretrained`` writes it (``config.json`` and
  ``diffusion_pytorch_model.safetensors``; like every model folder of the project it is
  read from safetensors only, :mod:`jointportrait.model_files`);
- an original AnimateDiff checkpoint (``mm_sd_v15*.ckpt`` / ``.safetensors``, keys
  ``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight``),
  renamed with diffusers' ``convert_animatediff_checkpoint_to_diffusers``; the adapter's
  config then comes from the denoiser it is meant for (channels, modules per block,
  norm groups) and from the checkpoint (a mid-block module or not; the length of the
  position table, from ``pos_encoder.pe``, which must equal the sinusoidal table the
  adapter builds). AnimateDiff publishes pickled ``.ckpt`` files: they are read with
  ``torch.load(weights_only=True)``, which unpickles tensors and plain containers only
  and refuses anything that would run code.

Loading fails loudly: every parameter of the adapter must come from the file with
its shape, and nothing in the file may be left over (only the fixed position
tables may be absent). A motion module that silently kept its random
initialisation is the classic cause of flickering videos.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from diffusers import MotionAdapter, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers
from safetensors import SafetensorError
from safetensors.torch import load_file

from jointportrait.errors import InputError, MissingPathError
from jointportrait.model_files import check_component_folder, check_safetensors, read_json
from jointportrait.models.motion import MAX_FRAMES, check_adapter_fits, motion_adapter_config

ORIGINAL_MARKER = ".temporal_transformer."
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
FOLDER_WEIGHTS = "diffusion_pytorch_model.safetensors"
POSITION_TABLE = "pos_embed.pe"  # a fixed sinusoidal buffer: recomputed when a file lacks it
LAYOUT = ("a MotionAdapter folder (config.json + diffusion_pytorch_model.safetensors) or an AnimateDiff motion "
          "checkpoint (.ckpt / .safetensors)")


class MotionWeightsError(InputError):
    """Motion-module weights that are missing, left over or of the wrong shape."""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or pickled checkpoint (``weights_only``), unwrapped from ``state_dict`` and
    a DDP ``module.`` prefix."""
    try:
        if path.suffix == ".safetensors":
            check_safetensors(path)
            state = load_file(str(path))
        elif path.suffix in PICKLE_SUFFIXES:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise InputError(f"{path}: unknown weights format; expected {LAYOUT}")
    except (OSError, RuntimeError, SafetensorError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise InputError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(f"{path}: holds no tensor state dict; expected {LAYOUT}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def is_original_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for AnimateDiff's own key names (``...motion_modules.K.temporal_transformer...``)."""
    return any(ORIGINAL_MARKER in k for k in state)


def position_tables(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``pos_encoder.pe`` tables of an original checkpoint (one per attention layer) under the diffusers
    name of their transformer block's table (one per block)."""
    tables: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.endswith(".pos_encoder.pe"):
            name = k.replace(".temporal_transformer", "").split(".attention_blocks.")[0] + f".{POSITION_TABLE}"
            if name in tables and not torch.equal(tables[name], v):
                raise MotionWeightsError(f"{k}: the position tables of one block differ; the motion modules "
                                         "use one sinusoidal table")
            tables[name] = v
    return tables


def strict_load(adapter: MotionAdapter, state: dict[str, torch.Tensor], where: str) -> MotionAdapter:
    """Load ``state`` into ``adapter``; every parameter must be there with its shape and nothing left over
    (position tables may be absent, and must match when present)."""
    expected = adapter.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(POSITION_TABLE))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} motion weights missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
        raise MotionWeightsError(f"{where}: {'; '.join(parts)}; the motion modules did not load")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise MotionWeightsError(f"{where}: {k} has shape {tuple(v.shape)}, the adapter expects "
                                     f"{tuple(expected[k].shape)}")
        if k.endswith(POSITION_TABLE) and not torch.allclose(v.float(), expected[k].float(), atol=1e-4):
            raise MotionWeightsError(f"{where}: {k} is not the sinusoidal position table the motion modules use")
    full = {**expected, **{k: v.to(expected[k].dtype) for k, v in state.items()}}
    adapter.load_state_dict(full, strict=True)
    return adapter


def _adapter_from_original(state: dict[str, torch.Tensor], unet: UNet2DConditionModel | None,
                           where: str) -> MotionAdapter:
    if unet is None:
        raise ValueError("an original AnimateDiff checkpoint needs the denoiser it is meant for")
    tables = position_tables(state)
    converted = convert_animatediff_checkpoint_to_diffusers(state)
    lengths = {v.shape[1] for v in tables.values()}
    if len(lengths) > 1:
        raise MotionWeightsError(f"{where}: position tables of different lengths {sorted(lengths)}")
    max_len = lengths.pop() if lengths else MAX_FRAMES
    with_mid = any(k.startswith("mid_block.") for k in converted)
    adapter = MotionAdapter(**motion_adapter_config(unet, max_seq_length=max_len, use_mid_block=with_mid))
    return strict_load(adapter, {**converted, **tables}, where)


def _adapter_from_folder(path: Path) -> MotionAdapter:
    config, weights = path / "config.json", path / FOLDER_WEIGHTS
    check_component_folder(path)  # JSON parses, safetensors complete, no pickle-only folder
    if not config.is_file() or not weights.is_file():
        raise MissingPathError(f"{path}: expected {LAYOUT}")
    try:
        adapter = MotionAdapter.from_config(read_json(config))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{config}: not a MotionAdapter config ({exc})") from None
    state = read_state_dict(weights)
    if is_original_layout(state):
        raise InputError(f"{weights}: holds AnimateDiff's original key names; give the checkpoint file itself")
    return strict_load(adapter, state, str(path))


def load_motion_adapter(path: str | Path, unet: UNet2DConditionModel | None = None) -> MotionAdapter:
    """A ``MotionAdapter`` from a folder or an AnimateDiff checkpoint file, checked to fit ``unet`` (when given;
    required for an original checkpoint, whose config follows the denoiser)."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such file or folder; expected {LAYOUT}")
    if path.is_dir():
        adapter = _adapter_from_folder(path)
    else:
        state = read_state_dict(path)
        if is_original_layout(state):
            adapter = _adapter_from_original(state, unet, str(path))
        elif not any(".motion_modules." in k for k in state):
            raise InputError(f"{path}: holds no motion-module weights; expected {LAYOUT}")
        else:
            if unet is None:
                raise ValueError("a diffusers-layout checkpoint file needs the denoiser it is meant for")
            with_mid = any(k.startswith("mid_block.") for k in state)
            lengths = {v.shape[1] for k, v in state.items() if k.endswith(POSITION_TABLE)}
            adapter = MotionAdapter(**motion_adapter_config(
                unet, max_seq_length=lengths.pop() if len(lengths) == 1 else MAX_FRAMES, use_mid_block=with_mid))
            adapter = strict_load(adapter, state, str(path))
    if unet is not None:
        check_adapter_fits(adapter, unet)
    return adapter
