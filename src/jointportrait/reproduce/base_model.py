"""The shipped pretrained base (the SD 1.5 stand-in, paper Sec. 3.3): packing and a sample sheet.

The base is trained by ``model.kind: vae`` (RGB only) then ``model.kind: base``
(configs/train/base_vae.yaml, base_unet.yaml; ``scripts/train_base.sh`` runs
both). :func:`pack_base` turns the base run's export into the folder shipped as
package data: the same SD layout with half-precision safetensors (the weights
load back as float32 with ``from_pretrained``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from jointportrait.errors import InputError, MissingPathError
from jointportrait.io import save_image
from jointportrait.pipelines import BaseModelPipeline
from jointportrait.training.model_init import load_vae


def pack_base(final_dir: str | Path, out: str | Path, dtype: torch.dtype = torch.float16,
              provenance: dict | None = None, vae: str | Path | None = None) -> Path:
    """Write the base export ``final_dir`` to ``out`` with ``dtype`` weights (and ``provenance.json``);
    ``vae`` (a VAE-stage run or an ``AutoencoderKL`` folder) replaces its VAE, e.g. the decoder fine-tune."""
    final_dir, out = Path(final_dir), Path(out)
    if not (final_dir / "model_index.json").is_file():
        raise MissingPathError(f"{final_dir}: no model_index.json; expected the final/ of a model.kind base run")
    pipe = BaseModelPipeline.from_pretrained(final_dir, local_files_only=True)
    if vae is not None:
        replacement = load_vae(vae)
        if replacement.config.scaling_factor != pipe.vae.config.scaling_factor:
            raise InputError(f"{vae}: scaling factor {replacement.config.scaling_factor} differs from the base's "
                             f"{pipe.vae.config.scaling_factor}: its latent space is not the one the UNet learned")
        pipe.register_modules(vae=replacement)
    if out.exists():
        shutil.rmtree(out)
    pipe.unet.to(dtype)
    pipe.vae.to(dtype)
    pipe.save_pretrained(out, safe_serialization=True)
    if provenance is not None:
        (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out


@torch.no_grad()
def sample_sheet(base_dir: str | Path, out_png: str | Path, rows: int = 4, columns: int = 8,
                 num_inference_steps: int = 25, seed: int = 0, device: str = "cpu") -> Path:
    """``rows`` x ``columns`` unconditional samples of a base folder, as one PNG."""
    pipe = BaseModelPipeline.from_pretrained(Path(base_dir), local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(num_images=rows * columns, num_inference_steps=num_inference_steps,
               generator=torch.Generator(device).manual_seed(seed), output_type="np")
    images = (out.images * 255 + 0.5).astype(np.uint8)  # (N, H, W, 3)
    grid = np.concatenate([np.concatenate(list(images[r * columns:(r + 1) * columns]), axis=1) for r in range(rows)])
    return save_image(Path(out_png), grid, overwrite=True)
