"""Validation image grids during training (paper Sec. 5.1; Fig. 3-5 style rows).

Each row is one validation reference: ``reference | ground-truth RGB |
ground-truth depth | RGB sample | depth sample`` and, for an 18-channel
(stage-2) model, ``| depth estimated from the ground-truth RGB | image
generated from the ground-truth depth``. Depth is shown colour-mapped
(near = warm). The grid is written to ``DIR/validation/step-<N>.png`` and to
TensorBoard.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from jointportrait.conditioning import STAGE2_CHANNELS
from jointportrait.io import colorize_depth, save_image

logger = logging.getLogger(__name__)


def _rgb(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((image.float().clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def _depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) relative depth in [0, 1] -> colour-mapped (H, W, 3) uint8, on the fixed [0, 1] range."""
    return colorize_depth(np.asarray(depth), lo=0.0, hi=1.0)


def _pil(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@torch.no_grad()
def validation_grid(pipe, samples: list[dict], num_inference_steps: int, guidance_scale: float,
                    seed: int) -> np.ndarray:
    """The grid ``(rows * H, columns * W, 3)`` uint8 for contract-shaped ``samples`` (one per row)."""
    rows = []
    for i, sample in enumerate(samples):
        ref = (sample["reference"].float() + 1) / 2  # (3, H, W) in [0, 1]
        h, w = sample["image"].shape[-2:]
        gt_depth = ((sample["depth"][0].float() + 1) / 2).cpu().numpy()  # normalised -> [0, 1]
        common = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
                  "height": h, "width": w}
        out = pipe(ref, generator=torch.Generator().manual_seed(seed + i), **common)
        row = [_rgb(sample["reference"]), _rgb(sample["image"]), _depth(gt_depth), _pil(out.images[0]),
               _depth(out.depths[0])]
        if pipe.unet.config.in_channels == STAGE2_CHANNELS:
            estimated = pipe(ref, image=(sample["image"].float() + 1) / 2,
                             generator=torch.Generator().manual_seed(seed + i), **common)
            raw = sample["depth_raw"][0].cpu().numpy()
            valid = sample["valid"][0].cpu().numpy() > 0.5
            rendered = pipe(ref, depth=raw, depth_valid=valid,
                            generator=torch.Generator().manual_seed(seed + i), **common)
            row += [_depth(estimated.depths[0]), _pil(rendered.images[0])]
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def run_validation(pipe, samples: list[dict], step: int, output_dir: Path, num_inference_steps: int,
                   guidance_scale: float, seed: int, tensorboard_writer=None, grid_fn=validation_grid) -> Path:
    """Write ``output_dir/validation/step-<step>.png`` (and to TensorBoard when a writer is given);
    ``grid_fn`` draws the grid (default: the joint model's rows, :func:`validation_grid`)."""
    grid = grid_fn(pipe, samples, num_inference_steps, guidance_scale, seed)
    path = save_image(Path(output_dir) / "validation" / f"step-{step}.png", grid, overwrite=True)
    if tensorboard_writer is not None:
        tensorboard_writer.add_image("validation", grid, step, dataformats="HWC")
    logger.info("validation grid %s", path)
    return path
