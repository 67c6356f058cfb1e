"""Training stages by ``model.kind`` (paper Sec. 3-4, 5.2, 9; supplementary 7.2).

Adding a stage is a class deriving from :class:`TrainingStage` and one entry
here (and its name in ``ModelConfig.kind``); the trainer loop does not change.
"""

from jointportrait.training.stages.base import StageLoss, TrainingStage
from jointportrait.training.stages.baselines import ConcatReferenceStage, DepthToImageStage, ImageToDepthStage
from jointportrait.training.stages.joint import JointStage
from jointportrait.training.stages.motion import MotionStage
from jointportrait.training.stages.one_step import OneStepDepthStage
from jointportrait.training.stages.pretrain import BaseModelStage
from jointportrait.training.stages.vae import VAEStage

# model.kind -> stage (explicit registry)
STAGES: dict[str, type[TrainingStage]] = {
    "joint": JointStage,
    "vae": VAEStage,
    "base": BaseModelStage,
    "image_to_depth": ImageToDepthStage,
    "depth_to_image": DepthToImageStage,
    "concat_reference": ConcatReferenceStage,
    "one_step_depth": OneStepDepthStage,
    "motion": MotionStage,
}

__all__ = ["STAGES", "BaseModelStage", "ConcatReferenceStage", "DepthToImageStage", "ImageToDepthStage", "JointStage",
           "MotionStage", "OneStepDepthStage", "StageLoss",
           "TrainingStage", "VAEStage"]
