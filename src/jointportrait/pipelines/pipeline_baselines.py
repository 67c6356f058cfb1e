"""Pipelines of the paper's baselines (Sec. 5.2 "w/o joint learning", Sec. 9 "w/o ReferenceNet").

They take the inputs of :class:`~jointportrait.pipelines.JointPortraitPipeline`
and return its output type, so evaluation treats every method alike:

* :class:`SeparateConditionalPipeline`: one of the two separate conditional
  networks; ``direction="image_to_depth"`` estimates depth from ``image``,
  ``"depth_to_image"`` renders a portrait for ``depth``. The other domain of
  the output is None.
* :class:`ConcatReferencePipeline`: joint RGB + depth generation with the
  reference latent concatenated to the denoiser input instead of a ReferenceNet.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers

from jointportrait.latent_codec import encode_depth, encode_rgb
from jointportrait.models.baselines import (
    DIRECTIONS,
    IMAGE_TO_DEPTH,
    ConcatReferenceDenoiser,
    ConditionalDenoiser,
)
from jointportrait.pipelines.denoising import (
    ChannelConditioning,
    KnownDomains,
    denoise,
    guidance_keep,
    scheduler_with_spacing,
)
from jointportrait.pipelines.portrait_base import (
    DOMAINS,
    PortraitPipelineBase,
    PortraitPipelineOutput,
    as_batch,
    check_reference_embedding,
    device_fixed_per_call,
)


class SeparateConditionalPipeline(PortraitPipelineBase):
    """"w/o joint learning": image -> depth or depth -> image with the reference's identity (Sec. 5.2)."""

    model_cpu_offload_seq = "image_encoder->reference_unet->unet->vae"
    _optional_components = ["image_encoder"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        reference_unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: torch.nn.Module | None = None,
        direction: str = IMAGE_TO_DEPTH,
        reference_embedding: str | None = None,
    ) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {direction!r}")
        self.register_modules(
            vae=vae, unet=unet, reference_unet=reference_unet, scheduler=scheduler, image_encoder=image_encoder
        )
        self.register_to_config(direction=direction,
                                reference_embedding=check_reference_embedding(reference_embedding, image_encoder))
        self._init_processors()
        self.denoiser = ConditionalDenoiser(unet, reference_unet, direction)

    @property
    def direction(self) -> str:
        return self.config.direction

    def check_inputs(self, reference_image, image, depth, **common) -> None:
        self.check_common_inputs(reference_image, **common)
        given, name = (image, "image") if self.direction == IMAGE_TO_DEPTH else (depth, "depth")
        if given is None:
            raise ValueError(f"`{name}` is required: the {self.direction.replace('_', ' ')} network is conditioned on it")
        self.check_per_reference(name, given, len(as_batch(reference_image)))

    @torch.no_grad()
    @device_fixed_per_call
    def __call__(
        self,
        reference_image,
        image=None,
        depth=None,
        depth_valid=None,
        num_images_per_reference: int = 1,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        timestep_spacing: str | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> PortraitPipelineOutput | tuple:
        """Depth for ``image`` (image -> depth) or portraits for raw ``depth`` (depth -> image).

        Inputs and output follow :meth:`JointPortraitPipeline.__call__`; the output's other domain is None.
        """
        # 1. Check inputs
        self.check_inputs(reference_image, image, depth, height=height, width=width,
                          num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                          num_images_per_reference=num_images_per_reference, output_type=output_type,
                          output_domains=DOMAINS, generator=generator)
        height, width = self.resolve_size(height, width, image, depth)
        do_cfg = guidance_scale > 1.0

        # 2. References and the condition latent
        refs = self.encode_references(reference_image, height, width, num_images_per_reference)
        if self.direction == IMAGE_TO_DEPTH:
            cond_z = encode_rgb(self.vae, self.preprocess_images(image, height, width))  # (R, 4, h, w)
        else:
            cond_z = encode_depth(self.vae, self.prepare_depth(depth, depth_valid, height, width).to(self.vae.dtype))
        bank = self.bank_rows(self.denoiser.encode_reference(refs.latents.to(self.unet.dtype), refs.embeddings),
                              refs, do_cfg)
        bank = self.denoiser.prepare_for_sampling(bank)
        batch = refs.index.shape[0]
        ehs = self.sample_embeddings(refs, do_cfg)
        known = ChannelConditioning(cond_z[refs.index].to(self.unet.dtype), guided_rows=do_cfg)

        # 3. Timesteps, noise and the loop
        scheduler = scheduler_with_spacing(self.scheduler, timestep_spacing)
        scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        target = self.initial_latents((batch, *cond_z.shape[1:]), scheduler, generator, latents)

        def predict(model_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.denoiser(model_in, t, encoder_hidden_states=ehs, reference_bank=bank)  # (., 4, h, w)

        target = denoise(scheduler, target, predict, known, guidance_scale, generator, self.progress_bar)

        # 4. Decode the generated domain
        rgb, dep = (None, target) if self.direction == IMAGE_TO_DEPTH else (target, None)
        out = self.decode(rgb, dep, ("depth",) if self.direction == IMAGE_TO_DEPTH else ("rgb",), output_type)
        self.maybe_free_model_hooks()
        return out if return_dict else (out.images, out.depths)


class ConcatReferencePipeline(PortraitPipelineBase):
    """"w/o ReferenceNet": joint RGB + depth samples, the reference latent as extra input channels (Sec. 9)."""

    model_cpu_offload_seq = "image_encoder->unet->vae"
    _optional_components = ["image_encoder"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: torch.nn.Module | None = None,
        reference_embedding: str | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler, image_encoder=image_encoder)
        self.register_to_config(reference_embedding=check_reference_embedding(reference_embedding, image_encoder))
        self._init_processors()
        self.denoiser = ConcatReferenceDenoiser(unet)

    @torch.no_grad()
    @device_fixed_per_call
    def __call__(
        self,
        reference_image,
        num_images_per_reference: int = 1,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        timestep_spacing: str | None = None,
        output_domains: tuple[str, ...] = DOMAINS,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> PortraitPipelineOutput | tuple:
        """Joint generation from references; inputs and output as :meth:`JointPortraitPipeline.__call__`."""
        self.check_common_inputs(reference_image, height, width, num_inference_steps, guidance_scale,
                                 num_images_per_reference, output_type, output_domains, generator)
        height, width = self.resolve_size(height, width)
        do_cfg = guidance_scale > 1.0
        refs = self.encode_references(reference_image, height, width, num_images_per_reference)
        batch = refs.index.shape[0]
        z_ref = refs.latents.to(self.unet.dtype)[refs.index]  # (N, 4, h, w)
        keep = None
        if do_cfg:
            keep = guidance_keep(batch, z_ref.device)
            z_ref = torch.cat([z_ref, z_ref])
        ehs = self.sample_embeddings(refs, do_cfg)

        scheduler = scheduler_with_spacing(self.scheduler, timestep_spacing)
        scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        c = z_ref.shape[1]
        latents = self.initial_latents((batch, 2 * c, *z_ref.shape[-2:]), scheduler, generator, latents)

        def predict(model_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.denoiser(model_in, t, encoder_hidden_states=ehs, reference_latents=z_ref,
                                 reference_keep=keep)  # (., 8, h, w)

        latents = denoise(scheduler, latents, predict, KnownDomains(), guidance_scale, generator, self.progress_bar)
        out = self.decode(latents[:, :c], latents[:, c:], output_domains, output_type)
        self.maybe_free_model_hooks()
        return out if return_dict else (out.images, out.depths)

