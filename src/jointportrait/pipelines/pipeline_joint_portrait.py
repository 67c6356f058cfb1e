"""Sampling RGB and depth jointly from a reference image (paper Sec. 3.2, 4; Fig. 1).

``JointPortraitPipeline`` holds the VAE, the widened denoiser (``unet``), the
ReferenceNet (``reference_unet``), a scheduler and an optional CLIP image
encoder. One call:

1. checks the inputs,
2. encodes the references and runs the ReferenceNet once (t = 0) into a
   :class:`~jointportrait.models.ReferenceBank` (:meth:`~JointPortraitPipeline.encode_reference`),
3. prepares the known domains when an image and/or a depth is given
   (channel-wise inpainting, Sec. 4; :meth:`~JointPortraitPipeline.prepare_known_domains`),
4. runs the scheduler's loop over ``[z_rgb, z_depth]`` (:func:`~jointportrait.pipelines.denoising.denoise`),
5. decodes the domains asked for (``output_domains``).

Channel-wise inpainting has two forms. An 18-channel (stage-2) denoiser
receives masks and masked latents as input
(:class:`~jointportrait.pipelines.denoising.ChannelConditioning`). An
8-channel (stage-1) denoiser is steered training-free by replacing the known
latent with its noised ground truth after every step
(:class:`~jointportrait.pipelines.denoising.LatentReplacement`). Masks are 1
where the model generates. ``timestep_spacing`` picks the scheduler's spacing
for one call (few-step sampling wants ``"trailing"``).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.conditioning import build_inpainting_condition, latent_mask
from jointportrait.latent_codec import encode_depth, encode_rgb
from jointportrait.models.joint_denoiser import JointDenoiser, is_inpainting_unet
from jointportrait.models.reference_attention import ReferenceBank
from jointportrait.pipelines.denoising import (
    ChannelConditioning,
    KnownDomains,
    LatentReplacement,
    denoise,
    scheduler_with_spacing,
)
from jointportrait.pipelines.portrait_base import (
    DOMAINS,
    PortraitPipelineBase,
    PortraitPipelineOutput,
    ReferenceInputs,
    as_batch,
    check_reference_embedding,
    device_fixed_per_call,
)

INPAINT_MODES = ("auto", "conditioning", "replacement")
JointPortraitPipelineOutput = PortraitPipelineOutput  # the name this pipeline's output had first


class JointPortraitPipeline(PortraitPipelineBase):
    """Reference image -> N samples of RGB and depth; also depth estimation, depth-to-image and editing."""

    model_cpu_offload_seq = "image_encoder->reference_unet->unet->vae"
    _optional_components = ["image_encoder"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        reference_unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: torch.nn.Module | None = None,
        reference_embedding: str | None = None,
        one_step_depth: bool = False,
    ) -> None:
        super().__init__()
        self.register_modules(
            vae=vae, unet=unet, reference_unet=reference_unet, scheduler=scheduler, image_encoder=image_encoder
        )
        # model_index.json says how cross-attention sees the reference: its CLIP embedding, or the null one
        self.register_to_config(reference_embedding=check_reference_embedding(reference_embedding, image_encoder))
        # ... and whether the model was fine-tuned into a one-step depth estimator (training/stages/one_step.py)
        self.register_to_config(one_step_depth=bool(one_step_depth))
        self._init_processors()
        # the denoiser view over the two registered UNets; it installs the reference-attention
        # processors unless the UNets carry them already (e.g. a trained module's UNets)
        self.joint_denoiser = JointDenoiser(unet, reference_unet)

    @property
    def is_one_step_depth(self) -> bool:
        """True for a model fine-tuned to estimate depth in one deterministic step (``model.kind:
        one_step_depth``): ``estimate_depth`` then takes that step from zero latents, with no ensemble."""
        return bool(getattr(self.config, "one_step_depth", False))

    def compile_denoiser(self, **compile_kwargs) -> None:
        """``torch.compile`` the denoiser UNet (see :meth:`ReferenceNetDenoiser.compile_unet`); the first call
        of each input size compiles."""
        self.joint_denoiser.compile_unet(**compile_kwargs)

    def enable_channels_last(self) -> None:
        """Both UNets' weights in channels-last memory format (faster convolutions on some GPUs; measured
        slower in fp32 on this project's CPUs, see BENCHMARKS.md)."""
        for unet in (self.unet, self.reference_unet):
            unet.to(memory_format=torch.channels_last)

    @property
    def is_inpainting_model(self) -> bool:
        return is_inpainting_unet(self.unet)

    def resolve_inpaint_mode(self, inpaint_mode: str = "auto") -> str:
        """``"auto"`` -> ``"conditioning"`` for an 18-channel model, else the training-free ``"replacement"``."""
        if inpaint_mode != "auto":
            return inpaint_mode
        return "conditioning" if self.is_inpainting_model else "replacement"

    # ------------------------------------------------------------------ inputs
    def check_inputs(self, reference_image, height, width, num_inference_steps, guidance_scale,
                     num_images_per_reference, image, depth, rgb_mask, depth_mask, inpaint_mode, output_type,
                     output_domains, generator) -> None:
        self.check_common_inputs(reference_image, height, width, num_inference_steps, guidance_scale,
                                 num_images_per_reference, output_type, output_domains, generator)
        if inpaint_mode not in INPAINT_MODES:
            raise ValueError(f"`inpaint_mode` must be one of {INPAINT_MODES}, got {inpaint_mode!r}")
        inpainting = self.is_inpainting_model  # also refuses a denoiser that is neither 8 nor 18 channels wide
        if inpaint_mode == "conditioning" and not inpainting:
            raise ValueError("`inpaint_mode='conditioning'` needs an 18-channel (stage-2) denoiser")
        n_ref = len(as_batch(reference_image))
        for name, value in (("image", image), ("depth", depth), ("rgb_mask", rgb_mask), ("depth_mask", depth_mask)):
            self.check_per_reference(name, value, n_ref)

    # -------------------------------------------------------------- reference
    def encode_reference(self, refs: ReferenceInputs, do_cfg: bool) -> ReferenceBank:
        """Run the ReferenceNet once (t = 0) on the references; rows aligned with the denoiser batch
        (``[uncond; cond]`` with guidance)."""
        bank = self.joint_denoiser.encode_reference(refs.latents.to(self.unet.dtype), refs.embeddings)
        return self.joint_denoiser.prepare_for_sampling(self.bank_rows(bank, refs, do_cfg))

    # ----------------------------------------------------------- known domains
    def prepare_known_domains(self, refs: ReferenceInputs, image, depth, depth_valid, rgb_mask, depth_mask,
                              mode: str, height: int, width: int, scheduler, generator, do_cfg: bool
                              ) -> KnownDomains:
        """How the given image/depth enters the loop: mask conditioning, latent replacement, or nothing."""
        device, dtype = self._execution_device, self.unet.dtype
        n_ref = refs.latents.shape[0]
        rgb = self.preprocess_images(image, height, width) if image is not None else None
        depth_n = self.prepare_depth(depth, depth_valid, height, width) if depth is not None else None
        m_rgb = self.prepare_mask(rgb_mask, 0.0 if rgb is not None else 1.0, n_ref, height, width)
        m_depth = self.prepare_mask(depth_mask, 0.0 if depth_n is not None else 1.0, n_ref, height, width)
        if rgb is None and bool((m_rgb < 0.5).any()):
            raise ValueError("`rgb_mask` keeps part of the image, but no `image` was given")
        if depth_n is None and bool((m_depth < 0.5).any()):
            raise ValueError("`depth_mask` keeps part of the depth, but no `depth` was given")
        rgb_in = rgb if rgb is not None else torch.zeros(n_ref, 3, height, width, device=device, dtype=self.vae.dtype)
        depth_in = depth_n if depth_n is not None else torch.ones(n_ref, 1, height, width, device=device)
        if mode == "conditioning":
            # depth estimation passes the photo as image and reference: encode it once
            same = rgb is not None and rgb.shape == refs.images.shape and torch.equal(rgb, refs.images)
            condition = build_inpainting_condition(
                self.vae, rgb_in, depth_in.to(self.vae.dtype), m_rgb, m_depth,
                rgb_latents=refs.latents if same else None,
            ).select(refs.index)
            return ChannelConditioning(condition.as_channels().to(dtype), guided_rows=do_cfg)
        if rgb is None and depth_n is None:
            return KnownDomains()
        z_known = torch.cat([encode_rgb(self.vae, rgb_in), encode_depth(self.vae, depth_in.to(self.vae.dtype))], 1)
        c = self.joint_denoiser.latent_channels
        latent_hw = z_known.shape[-2:]
        gen_mask = torch.cat([latent_mask(m_rgb, latent_hw).expand(-1, c, -1, -1),
                              latent_mask(m_depth, latent_hw).expand(-1, c, -1, -1)], 1)  # (R, 8, h, w)
        noise = randn_tensor((refs.index.shape[0], 2 * c, *latent_hw), generator=generator, device=device, dtype=dtype)
        return LatentReplacement(z_known[refs.index].to(dtype), gen_mask[refs.index].to(dtype), noise, scheduler,
                                 scheduler.timesteps)

    # -------------------------------------------------------------------- call
    @torch.no_grad()
    @device_fixed_per_call
    def __call__(
        self,
        reference_image,
        num_images_per_reference: int = 1,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        image=None,
        depth=None,
        depth_valid=None,
        rgb_mask=None,
        depth_mask=None,
        inpaint_mode: str = "auto",
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        timestep_spacing: str | None = None,
        output_domains: tuple[str, ...] = DOMAINS,
        output_type: str = "pil",
        return_dict: bool = True,
        decode_chunk_size: int | None = None,
    ) -> PortraitPipelineOutput | tuple:
        """Sample RGB and depth.

        Args:
            reference_image: the identity reference(s): PIL image, (H, W, 3) array or (3, H, W) tensor in [0, 1]
                (diffusers' convention), a batch of them, or a list.
            num_images_per_reference: samples drawn per reference.
            num_inference_steps: scheduler steps.
            guidance_scale: classifier-free guidance on the reference (1 = off).
            height, width: output size, multiples of the VAE factor; default: the known image's size, else
                the UNet's sample size times the VAE factor.
            image: known RGB per reference (depth estimation, editing).
            depth: known raw depth per reference, larger = farther (depth-to-image, editing).
            depth_valid: optional boolean masks of valid depth pixels.
            rgb_mask, depth_mask: 1 = generate, 0 = keep; a scalar, or one (H, W) mask per reference.
                Default: 0 for a domain that is given, 1 otherwise.
            inpaint_mode: "conditioning" (18-channel model), "replacement" (training-free, any model),
                or "auto" (conditioning when the model has 18 channels).
            generator: torch generator, or one per sample, for determinism.
            latents: initial noise ``(N, 8, h, w)``.
            timestep_spacing: "trailing", "leading" or "linspace" for this call (None: the scheduler's own).
            output_domains: the domains to decode, ("rgb", "depth") or one of them; the other is None.
            output_type: "pil", "np", "pt" or "latent".
            decode_chunk_size: decode at most this many samples at a time (None: all at once).
        """
        # 1. Check inputs
        self.check_inputs(reference_image, height, width, num_inference_steps, guidance_scale,
                          num_images_per_reference, image, depth, rgb_mask, depth_mask, inpaint_mode, output_type,
                          output_domains, generator)
        if decode_chunk_size is not None and decode_chunk_size < 1:
            raise ValueError(f"`decode_chunk_size` must be >= 1 or None, got {decode_chunk_size}")
        height, width = self.resolve_size(height, width, image)
        do_cfg = guidance_scale > 1.0

        # 2. References: latents, image embeddings, the ReferenceNet once at t = 0
        refs = self.encode_references(reference_image, height, width, num_images_per_reference)
        bank = self.encode_reference(refs, do_cfg)
        ehs = self.sample_embeddings(refs, do_cfg)

        # 3. Timesteps and initial noise
        scheduler = scheduler_with_spacing(self.scheduler, timestep_spacing)
        scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        c = self.joint_denoiser.latent_channels
        latents = self.initial_latents((refs.index.shape[0], 2 * c, *latent_hw), scheduler, generator, latents)

        # 4. Known domains (channel-wise inpainting, Sec. 4)
        mode = self.resolve_inpaint_mode(inpaint_mode)
        known = self.prepare_known_domains(refs, image, depth, depth_valid, rgb_mask, depth_mask, mode, height,
                                           width, scheduler, generator, do_cfg)

        # 5. Denoising loop
        def predict(model_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.joint_denoiser(model_in, t, encoder_hidden_states=ehs, reference_bank=bank)  # (N, 8, h, w)

        latents = denoise(scheduler, latents, predict, known, guidance_scale, generator, self.progress_bar)

        # 6. Decode
        out = self.decode(latents[:, :c], latents[:, c:], output_domains, output_type, decode_chunk_size)
        self.maybe_free_model_hooks()
        if not return_dict:
            return out.images, out.depths
        return out
