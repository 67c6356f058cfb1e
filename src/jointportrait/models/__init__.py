"""Model parts of the joint RGB+depth denoiser and of the paper's baselines (paper Sec. 3.2-3.3, 5.2, 9)."""

from jointportrait.models.components import BaseComponents, ModelComponents
from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.reference_attention import (
    BankAwareAttnProcessor,
    ReferenceBank,
    ReferenceReaderProcessor,
    ReferenceWriterProcessor,
    install_reference_attention,
)
from jointportrait.models.reference_denoiser import ReferenceNetDenoiser
from jointportrait.models.widen import widen_unet

__all__ = [
    "BankAwareAttnProcessor",
    "BaseComponents",
    "JointDenoiser",
    "ModelComponents",
    "ReferenceBank",
    "ReferenceNetDenoiser",
    "ReferenceReaderProcessor",
    "ReferenceWriterProcessor",
    "install_reference_attention",
    "widen_unet",
]
