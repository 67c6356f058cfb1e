"""Diffusion pipelines of jointportrait."""

from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline, JointPortraitPipelineOutput

__all__ = ["JointPortraitPipeline", "JointPortraitPipelineOutput"]
