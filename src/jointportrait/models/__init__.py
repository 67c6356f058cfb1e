"""Model parts of the joint RGB+depth denoiser (paper Sec. 3.2-3.3)."""

from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.reference_attention import (
    ReferenceAttnProcessor,
    ReferenceBank,
    install_reference_attention,
)
from jointportrait.models.widen import widen_unet

__all__ = [
    "JointDenoiser",
    "ReferenceAttnProcessor",
    "ReferenceBank",
    "install_reference_attention",
    "widen_unet",
]
