"""The one-step depth stage (``model.kind: one_step_depth``): a stage-2 model fine-tuned into a deterministic
one-step depth estimator, in the manner of E2E-FT (Martin Garcia et al. 2024, "Fine-tuning image-conditional
diffusion models is easier than you think"; paper Sec. 5.3 uses Marigold-style multi-step ensembles instead).

``model.init_from`` is a stage-2 run or model (18 input channels). Every step runs the one denoising step
that inference takes (:func:`~jointportrait.objective.one_step_depth_loss`: last timestep, zero noise,
depth-estimation masks) and trains on the decoded depth with an affine-invariant L1 loss. The export is a
joint model folder whose ``model_index.json`` says ``one_step_depth: true`` and whose DDIM scheduler
ends on the clean latent (``set_alpha_to_one``, trailing spacing): one step of the pipeline returns
exactly the depth the loss saw, and ``estimate-depth`` takes that one step with no ensemble.
The model still samples joint generation and the other tasks as its stage-2 start did, with
whatever the fine-tune changed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler

from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.objective import one_step_depth_loss
from jointportrait.pipelines import JointPortraitPipeline
from jointportrait.training.config import ConfigError, RunConfig
from jointportrait.training.model_init import build_joint_components
from jointportrait.training.stages.diffusion import DiffusionStage


def one_step_scheduler(scheduler) -> DDIMScheduler:
    """DDIM on ``scheduler``'s noise schedule whose last step returns the predicted clean latent itself."""
    return DDIMScheduler.from_config(scheduler.config, set_alpha_to_one=True, timestep_spacing="trailing",
                                     clip_sample=False, thresholding=False)


class OneStepDepthStage(DiffusionStage):
    """``model.kind: one_step_depth``: E2E-FT of a stage-2 model at the last timestep with zero noise."""

    def __init__(self, cfg: RunConfig) -> None:
        if cfg.model.init_from is None or cfg.model.in_channels != 18:
            raise ConfigError("model.kind one_step_depth fine-tunes a stage-2 model: set model.init_from to a "
                              "stage-2 run or model and model.in_channels: 18")
        components = build_joint_components(cfg)
        model = JointDenoiser(components.unet, components.reference_unet)
        super().__init__(cfg, components, model, one_step_depth_loss)
        self.components = self.components.replace(scheduler=one_step_scheduler(self.components.scheduler))

    def pipeline(self, model: torch.nn.Module) -> JointPortraitPipeline:
        c = self.components
        return JointPortraitPipeline(vae=self.frozen["vae"], unet=model.unet, reference_unet=model.reference_unet,
                                     scheduler=c.scheduler, image_encoder=self.frozen["image_encoder"],
                                     one_step_depth=True)

    def export(self, model: torch.nn.Module, out: Path) -> None:
        c = self.exported_components(model)
        self.save_pipeline(JointPortraitPipeline(**c.pipeline_kwargs(), one_step_depth=True), out)
