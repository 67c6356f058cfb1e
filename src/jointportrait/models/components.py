"""Typed bundles of the parts a model is made of (DESIGN.md "Fixed conventions").

:class:`BaseComponents` is an SD-style base model (a 4-channel RGB latent
diffusion UNet with its VAE, scheduler and optional CLIP image encoder), the
starting point of every method (paper Sec. 3.3). :class:`ModelComponents` is a
built model of any method: the denoiser ``unet``, its ReferenceNet when the
method has one, and the frozen parts; its fields are the keyword arguments of
the method's pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel


@dataclass
class BaseComponents:
    """A Stable-Diffusion-style base: ``unet`` (4 -> 4 channels), ``vae``, ``scheduler``, optional ``image_encoder``."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: object
    image_encoder: torch.nn.Module | None = None

    def replace(self, **changes) -> BaseComponents:
        return replace(self, **changes)


@dataclass
class ModelComponents:
    """The parts of a joint or baseline model; ``reference_unet`` is None for methods without a ReferenceNet."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: object
    reference_unet: UNet2DConditionModel | None = None
    image_encoder: torch.nn.Module | None = None

    def pipeline_kwargs(self, *, with_reference_unet: bool = True) -> dict:
        """The fields as keyword arguments of a pipeline constructor."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        if not with_reference_unet:
            kwargs.pop("reference_unet")
        return kwargs

    def replace(self, **changes) -> ModelComponents:
        return replace(self, **changes)
