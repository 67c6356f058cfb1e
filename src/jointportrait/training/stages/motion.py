"""Stage 3 (``model.kind: motion``): the motion modules for depth-driven animation (paper Sec. 4 last
paragraph, 5.1, 5.5; supplementary 7.1-7.2).

The joint model of ``model.init_from`` (a stage-2 run by default: 18-channel
denoiser, depth-to-image masks on every frame; a stage-1 model works too) gains
a motion adapter (:func:`~jointportrait.training.model_init.build_video_components`);
everything but the temporal modules is frozen ("we fix the parameters from the
first stage while training", Sec. 7.2). The data are clips
(:class:`~jointportrait.data.datasets.ClipDataset`: ``video.num_frames`` frames and
the ``video.motion_frames`` ground-truth frames before them); the loss is eq. 5
over every frame with one timestep per clip
(:func:`~jointportrait.objective.video_diffusion_loss`). The export is a
:class:`~jointportrait.pipelines.JointPortraitVideoPipeline` folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from jointportrait.models.video_denoiser import VideoJointDenoiser
from jointportrait.objective import JointLoss, video_diffusion_loss
from jointportrait.pipelines import JointPortraitVideoPipeline
from jointportrait.training.config import RunConfig
from jointportrait.training.data import build_clip_datasets
from jointportrait.training.model_init import build_video_components
from jointportrait.training.stages.base import TrainingStage
from jointportrait.training.stages.diffusion import DiffusionStage


class MotionStage(DiffusionStage):
    """Trains the motion adapter of a :class:`VideoJointDenoiser`; the UNets, VAE and image encoder are frozen."""

    def __init__(self, cfg: RunConfig) -> None:
        components, adapter = build_video_components(cfg)
        model = VideoJointDenoiser(components.unet, components.reference_unet, adapter)
        model.unet.requires_grad_(False)
        model.reference_unet.requires_grad_(False)
        model.motion_adapter.requires_grad_(True)
        super().__init__(cfg, components, model, video_diffusion_loss)

    @classmethod
    def dataset(cls, cfg: RunConfig, split: str, seed: int, train: bool = True) -> Dataset:
        v = cfg.video
        return build_clip_datasets(cfg.dataset_sources(), cfg.data.resolution, split, seed, v.num_frames,
                                   v.motion_frames, v.stride, train=train)

    def prepare(self, device: torch.device, weight_dtype: torch.dtype) -> None:
        # the ReferenceNet is frozen: no probe for parameters without a reader (DiffusionStage.prepare)
        TrainingStage.prepare(self, device, weight_dtype)
        if self.cfg.train.gradient_checkpointing:
            self.model.enable_gradient_checkpointing()

    def loss(self, model: torch.nn.Module, batch: dict, generator: torch.Generator) -> JointLoss:
        return video_diffusion_loss(model, self.frozen["vae"], self.components.scheduler, batch,
                                    image_encoder=self.frozen["image_encoder"],
                                    reference_dropout=self.cfg.train.reference_dropout,
                                    prediction_type=self.cfg.model.prediction_type, generator=generator,
                                    motion_start_probability=self.cfg.video.start_probability)

    def pipeline(self, model: torch.nn.Module) -> JointPortraitVideoPipeline:
        return JointPortraitVideoPipeline(vae=self.frozen["vae"], unet=model.unet, reference_unet=model.reference_unet,
                                          motion_adapter=model.motion_adapter, scheduler=self.components.scheduler,
                                          image_encoder=self.frozen["image_encoder"])

    def export(self, model: torch.nn.Module, out: Path) -> None:
        c = self.exported_components(model)
        self.save_pipeline(JointPortraitVideoPipeline(**c.pipeline_kwargs(), motion_adapter=model.motion_adapter), out)
