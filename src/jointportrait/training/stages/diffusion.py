"""What the diffusion stages share (paper Sec. 3.2-4, 5.2, 9): the joint model and the baselines.

A diffusion stage trains a denoiser module built from :class:`ModelComponents`
with one of the losses of :mod:`jointportrait.objective`; the VAE and the image
encoder are frozen. The exported scheduler carries the prediction type the
model was trained with (``model.prediction_type``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from jointportrait.models.components import ModelComponents
from jointportrait.models.reference_denoiser import ReferenceNetDenoiser
from jointportrait.objective import JointLoss
from jointportrait.training.config import RunConfig
from jointportrait.training.stages.base import TrainingStage

logger = logging.getLogger(__name__)

Loss = Callable[..., JointLoss]


class DiffusionStage(TrainingStage):
    """A denoiser trained with a diffusion loss; the VAE and image encoder frozen."""

    def __init__(self, cfg: RunConfig, components: ModelComponents, model: torch.nn.Module, loss: Loss) -> None:
        super().__init__(cfg)
        if cfg.model.prediction_type is not None:
            # the exported scheduler must interpret the model's output as it was trained
            components = components.replace(scheduler=type(components.scheduler).from_config(
                components.scheduler.config, prediction_type=cfg.model.prediction_type))
        self.components = components
        self.model = model
        self.frozen = {"vae": components.vae, "image_encoder": components.image_encoder}
        self._loss = loss

    def prepare(self, device: torch.device, weight_dtype: torch.dtype) -> None:
        super().prepare(device, weight_dtype)
        if self.cfg.model.freeze_unread_reference and isinstance(self.model, ReferenceNetDenoiser):
            names = self.model.freeze_reference_parameters_without_reader()
            logger.info("froze %d ReferenceNet tensors that feed no reader", len(names))
        if self.cfg.train.gradient_checkpointing:
            for unet in (getattr(self.model, "unet", None), getattr(self.model, "reference_unet", None)):
                if unet is not None:
                    unet.enable_gradient_checkpointing()

    def loss(self, model: torch.nn.Module, batch: dict, generator: torch.Generator) -> JointLoss:
        return self._loss(model, self.frozen["vae"], self.components.scheduler, batch,
                          image_encoder=self.frozen["image_encoder"],
                          reference_dropout=self.cfg.train.reference_dropout,
                          prediction_type=self.cfg.model.prediction_type, generator=generator)

    def exported_components(self, model: torch.nn.Module) -> ModelComponents:
        """The trained ``model``'s UNets with the full-precision frozen parts."""
        frozen = self.export_frozen()
        return self.components.replace(unet=model.unet, reference_unet=getattr(model, "reference_unet", None),
                                       vae=frozen["vae"], image_encoder=frozen["image_encoder"])

    def save_pipeline(self, pipe, out: Path) -> None:
        pipe.save_pretrained(out, safe_serialization=True)
