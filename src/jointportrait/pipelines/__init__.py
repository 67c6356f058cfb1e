"""Diffusion pipelines of jointportrait: the joint model, the paper's baselines (one output type), the
video model (Sec. 5.5) and the unconditional sampler of the pretrained base.

:data:`PIPELINES` maps the ``_class_name`` a saved folder's ``model_index.json``
records to the class that loads it (see :func:`jointportrait.loading.load_pipeline`).
"""

from jointportrait.pipelines.pipeline_base_model import BaseModelPipeline
from jointportrait.pipelines.pipeline_baselines import ConcatReferencePipeline, SeparateConditionalPipeline
from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline, JointPortraitPipelineOutput
from jointportrait.pipelines.pipeline_video import (
                                           JointPortraitVideoPipeline,
                                           JointPortraitVideoPipelineOutput,
)
from jointportrait.pipelines.portrait_base import PortraitPipelineOutput

PIPELINES = {cls.__name__: cls for cls in (JointPortraitPipeline, SeparateConditionalPipeline, ConcatReferencePipeline,
                                           JointPortraitVideoPipeline, BaseModelPipeline)}

__all__ = [
    "PIPELINES",
    "BaseModelPipeline",
    "ConcatReferencePipeline",
    "JointPortraitPipeline",
    "JointPortraitPipelineOutput",
    "JointPortraitVideoPipeline",
    "JointPortraitVideoPipelineOutput",
    "PortraitPipelineOutput",
    "SeparateConditionalPipeline",
]
