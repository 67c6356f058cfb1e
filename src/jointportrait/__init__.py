"""jointportrait: joint learning of depth and appearance for portrait images.

An open implementation of "Joint Learning of Depth and Appearance for Portrait
Images" (Ji et al.): a latent-diffusion model whose SD 1.5 UNet is widened to
denoise RGB and depth latents together, conditioned on a reference image
through a ReferenceNet, and the applications, training and evaluation around it.

Heavy modules load on first use, so ``import jointportrait`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "widen_unet": "jointportrait.models.widen",
    "JointDenoiser": "jointportrait.models.joint_denoiser",
    "ReferenceBank": "jointportrait.models.reference_attention",
    "JointPortraitPipeline": "jointportrait.pipelines.pipeline_joint_portrait",
    "JointPortraitPipelineOutput": "jointportrait.pipelines.pipeline_joint_portrait",
    "JointPortraitVideoPipeline": "jointportrait.pipelines.pipeline_video",
    "VideoJointDenoiser": "jointportrait.models.video_denoiser",
    "joint_diffusion_loss": "jointportrait.objective",
    "normalize_depth": "jointportrait.depth_codec",
    "create_joint_model": "jointportrait.loading",
    "create_tiny_joint_model": "jointportrait.loading",
    "load_joint_pipeline": "jointportrait.loading",
    "load_video_pipeline": "jointportrait.loading",
    "load_motion_adapter": "jointportrait.models.motion_checkpoint",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jointportrait' has no attribute {name!r}")
