"""The base-model stage (``model.kind: base``): pretraining the SD 1.5 stand-in (paper Sec. 3.3).

Every method of the paper starts from a pretrained Stable Diffusion 1.5. No SD
weights can be had here, so this stage trains a small 4-channel RGB latent
diffusion UNet on face images only (no depth, no reference: the null
cross-attention embedding), over a frozen VAE trained before it on RGB images
(``model.kind: vae`` with ``model.vae_train_depth: false``). Its export is a
:class:`~jointportrait.pipelines.BaseModelPipeline` folder in SD's layout, which
``jointportrait create --base-model`` and ``model.base`` accept like an SD 1.5
folder. The layout is :mod:`jointportrait.models.mini_sd` (``model.base: mini``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jointportrait.models.components import ModelComponents
from jointportrait.objective import unconditional_diffusion_loss
from jointportrait.pipelines import BaseModelPipeline
from jointportrait.training.config import RunConfig
from jointportrait.training.model_init import build_base_components
from jointportrait.training.stages.diffusion import DiffusionStage


class BaseModelStage(DiffusionStage):
    """The 4-channel UNet trains on RGB latents; the VAE is frozen."""

    validates = True

    def __init__(self, cfg: RunConfig) -> None:
        base = build_base_components(cfg)
        components = ModelComponents(vae=base.vae, unet=base.unet, scheduler=base.scheduler)
        super().__init__(cfg, components, base.unet, unconditional_diffusion_loss)

    def prepare(self, device: torch.device, weight_dtype: torch.dtype) -> None:
        super().prepare(device, weight_dtype)
        if self.cfg.train.gradient_checkpointing:
            self.model.enable_gradient_checkpointing()

    def pipeline(self, model: torch.nn.Module) -> BaseModelPipeline:
        return BaseModelPipeline(unet=model, vae=self.frozen["vae"], scheduler=self.components.scheduler)

    def validation_grid(self, pipe, samples: list[dict], num_inference_steps: int, guidance_scale: float,
                        seed: int) -> np.ndarray:
        """Two rows of unconditional samples (as many per row as there are validation samples, at least 4)."""
        h, w = samples[0]["image"].shape[-2:]
        n = max(4, len(samples))
        out = pipe(num_images=2 * n, num_inference_steps=num_inference_steps, height=h, width=w,
                   generator=torch.Generator().manual_seed(seed), output_type="np")
        images = (out.images * 255 + 0.5).astype(np.uint8)  # (2n, H, W, 3)
        return np.concatenate([np.concatenate(list(images[:n]), axis=1), np.concatenate(list(images[n:]), axis=1)])

    def export(self, model: torch.nn.Module, out: Path) -> None:
        vae = self.export_frozen()["vae"]
        self.save_pipeline(BaseModelPipeline(unet=model, vae=vae, scheduler=self.components.scheduler), out)
