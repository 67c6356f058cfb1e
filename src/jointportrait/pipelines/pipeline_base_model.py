"""Unconditional sampling from the pretrained base (the SD 1.5 stand-in, paper Sec. 3.3).

The base is a plain 4-channel RGB latent diffusion model (``unet``, ``vae``,
``scheduler``) trained with the null cross-attention embedding; this pipeline
draws faces from it so that the base can be validated and looked at before
any method starts from it. Its saved folder has the layout of an SD 1.5 folder
(``model_index.json``, ``unet/``, ``vae/``, ``scheduler/``), which is what
``jointportrait create --base-model`` reads.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.latent_codec import decode_rgb
from jointportrait.models.image_condition import null_embedding

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


class BaseModelPipeline(DiffusionPipeline):
    """``pipe(num_images=8, num_inference_steps=25, generator=g).images``: faces from noise."""

    model_cpu_offload_seq = "unet->vae"

    def __init__(self, unet: UNet2DConditionModel, vae: AutoencoderKL, scheduler) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler)

    @property
    def latent_scale(self) -> int:
        """Image pixels per latent pixel (SD: 8)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def check_inputs(self, num_images: int, num_inference_steps: int, height: int, width: int,
                     output_type: str) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if height % self.latent_scale or width % self.latent_scale or height <= 0 or width <= 0:
            raise ValueError(f"height and width must be positive multiples of {self.latent_scale}, "
                             f"got {height}x{width}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")

    @torch.no_grad()
    def __call__(self, num_images: int = 1, num_inference_steps: int = 25, height: int | None = None,
                 width: int | None = None, generator: torch.Generator | None = None,
                 output_type: str = "pil") -> ImagePipelineOutput:
        # 1. Inputs
        default = self.unet.config.sample_size * self.latent_scale
        height, width = height or default, width or default
        self.check_inputs(num_images, num_inference_steps, height, width, output_type)
        param = next(self.unet.parameters())
        # 2. Initial noise and the null embedding
        shape = (num_images, self.unet.config.in_channels, height // self.latent_scale, width // self.latent_scale)
        latents = randn_tensor(shape, generator=generator, device=param.device, dtype=param.dtype)  # (N, 4, h, w)
        latents = latents * self.scheduler.init_noise_sigma
        ehs = null_embedding(num_images, self.unet.config.cross_attention_dim, param.device, param.dtype)  # (N, 1, D)
        # 3. Denoising loop
        self.scheduler.set_timesteps(num_inference_steps, device=param.device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(latents, t)
            pred = self.unet(model_input, t, encoder_hidden_states=ehs).sample  # (N, 4, h, w)
            latents = self.scheduler.step(pred, t, latents).prev_sample
        # 4. Decode
        if output_type == "latent":
            return ImagePipelineOutput(images=latents)
        images = (decode_rgb(self.vae, latents).float() + 1.0) / 2.0  # (N, 3, H, W) in [0, 1]
        if output_type == "pt":
            return ImagePipelineOutput(images=images)
        array = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
        if output_type == "np":
            return ImagePipelineOutput(images=array)
        return ImagePipelineOutput(images=[PIL.Image.fromarray((a * 255 + 0.5).astype(np.uint8)) for a in array])
