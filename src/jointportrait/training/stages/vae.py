"""The VAE stage (``model.kind: vae``): an autoencoder for the joint latent space (see
:mod:`jointportrait.training.vae_stage`; the paper uses SD 1.5's VAE frozen, Sec. 3.1-3.2)."""

from __future__ import annotations

from pathlib import Path

import torch

from jointportrait.models.mini_sd import mini_sd_vae
from jointportrait.training.config import RunConfig
from jointportrait.training.model_init import build_base_components, load_vae
from jointportrait.training.stages.base import TrainingStage
from jointportrait.training.vae_stage import VAELoss, VAETrainingModule, export_vae, tiny_vae, vae_loss


class VAEStage(TrainingStage):
    """The autoencoder itself trains (RGB and depth reconstruction, or RGB only with
    ``model.vae_train_depth: false``); nothing is frozen."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        m = cfg.model
        if m.vae is not None:
            vae = load_vae(m.vae)
        elif m.base == "tiny":
            vae = tiny_vae(levels=m.vae_levels, seed=m.tiny_seed, sample_size=cfg.data.resolution)
        elif m.base == "mini":
            vae = mini_sd_vae(sample_size=cfg.data.resolution, seed=m.tiny_seed)
        else:
            vae = build_base_components(cfg).vae
        self.model = VAETrainingModule(vae, train_encoder=m.vae_train_encoder)

    def loss(self, model: torch.nn.Module, batch: dict, generator: torch.Generator) -> VAELoss:
        return vae_loss(model, None, None, batch, generator=generator, with_depth=self.cfg.model.vae_train_depth)

    def export(self, model: torch.nn.Module, out: Path) -> None:
        export_vae(model, out)
