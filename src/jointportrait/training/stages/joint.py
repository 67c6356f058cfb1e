"""The joint model's stages (paper Sec. 3.2-4, supplementary 7.2).

Stage 1 (``model.in_channels: 8``) trains the widened denoiser and the
ReferenceNet with eq. 5. Stage 2 (``model.in_channels: 18``, ``model.init_from``
a stage-1 run) is the inpainting fine-tune: every batch gets one mask per
domain from :class:`~jointportrait.training.masks.MaskSampler`. Which of the two
a run is follows from the built denoiser (:attr:`JointDenoiser.is_inpainting`),
decided once here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.objective import joint_diffusion_loss
from jointportrait.pipelines import JointPortraitPipeline
from jointportrait.training.config import RunConfig
from jointportrait.training.masks import MaskSampler
from jointportrait.training.model_init import build_joint_components
from jointportrait.training.stages.diffusion import DiffusionStage


class JointStage(DiffusionStage):
    """``model.kind: joint``: stage 1, or stage 2 when the denoiser has the 18-channel inpainting input."""

    validates = True

    def __init__(self, cfg: RunConfig) -> None:
        components = build_joint_components(cfg)
        model = JointDenoiser(components.unet, components.reference_unet)
        super().__init__(cfg, components, model, joint_diffusion_loss)
        self.mask_sampler = MaskSampler(cfg.masks.tasks, cfg.masks.spatial) if model.is_inpainting else None

    def prepare_batch(self, batch: dict, generator: torch.Generator) -> dict:
        if self.mask_sampler is not None:
            masks, _ = self.mask_sampler.sample(batch, generator)
            batch.update(masks)
        return batch

    def pipeline(self, model: torch.nn.Module) -> JointPortraitPipeline:
        c = self.components
        return JointPortraitPipeline(vae=self.frozen["vae"], unet=model.unet, reference_unet=model.reference_unet,
                                     scheduler=c.scheduler, image_encoder=self.frozen["image_encoder"])

    def export(self, model: torch.nn.Module, out: Path) -> None:
        c = self.exported_components(model)
        self.save_pipeline(JointPortraitPipeline(**c.pipeline_kwargs()), out)
