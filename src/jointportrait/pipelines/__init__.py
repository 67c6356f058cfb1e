"""Diffusion pipelines of jointportrait: the joint model, the paper's baselines (one output type) and the
video model (Sec. 5.5).

:data:`PIPELINES` maps the ``_class_name`` a saved folder's ``model_index.json``
records to the class that loads it (see :func:`jointportrait.loading.load_pipeline`).
"""

from jointportrait.pipelines.pipeline_baselines import ConcatReferencePipeline, SeparateConditionalPipeline
from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline, JointPortraitPipelineOutput
from jointportrait.pipelines.pipeline_video import (
                                           JointPortraitVideoPipeline,
                                           JointPortraitVideoPipelineOutput,
)
from jointportrait.pipelines.portrait_base import PortraitPipelineOutput

PIPELINES = {cls.__name__: cls for cls in (JointPortraitPipeline, SeparateConditionalPipeline, ConcatReferencePipeline,
                                           JointPortraitVideoPipeline)}

__all__ = [
    "PIPELINES",
    "ConcatReferencePipeline",
    "JointPortraitPipeline",
    "JointPortraitPipelineOutput",
    "JointPortraitVideoPipeline",
    "JointPortraitVideoPipelineOutput",
    "PortraitPipelineOutput",
    "SeparateConditionalPipeline",
]
