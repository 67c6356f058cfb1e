"""Sampling RGB and depth jointly from a reference image (paper Sec. 3.2, 4; Fig. 1).

``JointPortraitPipeline`` holds the VAE, the widened denoiser (``unet``), the
ReferenceNet (``reference_unet``), a scheduler and an optional CLIP image
encoder. One call:

1. checks the inputs,
2. encodes the references and runs the ReferenceNet once (t = 0) into a
   :class:`~jointportrait.models.ReferenceBank`,
3. builds the known-domain conditioning when an image and/or a depth is given
   (channel-wise inpainting, Sec. 4),
4. runs the scheduler's loop over ``[z_rgb, z_depth]``,
5. decodes RGB and depth.

Channel-wise inpainting has two forms. An 18-channel (stage-2) denoiser
receives masks and masked latents as input ("conditioning"). An 8-channel
(stage-1) denoiser is steered training-free by replacing the known latent with
its noised ground truth after every step ("replacement", the baseline of the
applications issue). Masks are 1 where the model generates.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.conditioning import (
    STAGE1_CHANNELS,
    STAGE2_CHANNELS,
    build_inpainting_condition,
    latent_mask,
)
from jointportrait.depth_codec import normalize_depth
from jointportrait.latent_codec import decode_depth, decode_rgb, encode_depth, encode_rgb
from jointportrait.models.image_condition import null_embedding, reference_conditioning
from jointportrait.models.joint_denoiser import JointDenoiser

INPAINT_MODES = ("auto", "conditioning", "replacement")


@dataclass
class JointPortraitPipelineOutput(BaseOutput):
    """``images``: PIL list or (N, H, W, 3) float array in [0, 1]; ``depths``: (N, H, W) float32 in [0, 1]
    (relative depth, 0 = near, 1 = far). With ``output_type="latent"`` both are latents."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    depths: np.ndarray | torch.Tensor


def _as_batch(x: Any) -> list:
    """A list with one entry per item; a 4-D array or tensor counts as a batch."""
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4:
        return list(x)
    return [x]


def _image_input(x: Any) -> Any:
    """Images for ``VaeImageProcessor.preprocess``: batched arrays/tensors stay whole."""
    return x if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4 else _as_batch(x)


class JointPortraitPipeline(DiffusionPipeline):
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
    ) -> None:
        super().__init__()
        self.register_modules(
            vae=vae, unet=unet, reference_unet=reference_unet, scheduler=scheduler, image_encoder=image_encoder
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.mask_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_normalize=False, do_binarize=True, do_convert_grayscale=True
        )
        # Installs the reader/writer processors on both UNets (paired by module name).
        self._joint = JointDenoiser(unet, reference_unet)

    @property
    def joint_denoiser(self) -> JointDenoiser:
        return self._joint

    @property
    def is_inpainting_model(self) -> bool:
        return self.unet.config.in_channels == STAGE2_CHANNELS

    # ------------------------------------------------------------------ inputs
    def check_inputs(self, reference_image, height, width, num_inference_steps, guidance_scale,
                     num_images_per_reference, image, depth, inpaint_mode, output_type) -> None:
        if reference_image is None or len(_as_batch(reference_image)) == 0:
            raise ValueError("`reference_image` is required: a PIL image, array or tensor, or a list of them")
        for name, value in (("height", height), ("width", width)):
            if value is not None and (value <= 0 or value % self.vae_scale_factor):
                raise ValueError(f"`{name}` must be a positive multiple of {self.vae_scale_factor}, got {value}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}")
        if guidance_scale < 1.0:
            raise ValueError(f"`guidance_scale` must be >= 1 (1 disables guidance), got {guidance_scale}")
        if num_images_per_reference < 1:
            raise ValueError(f"`num_images_per_reference` must be >= 1, got {num_images_per_reference}")
        if inpaint_mode not in INPAINT_MODES:
            raise ValueError(f"`inpaint_mode` must be one of {INPAINT_MODES}, got {inpaint_mode!r}")
        if inpaint_mode == "conditioning" and not self.is_inpainting_model:
            raise ValueError("`inpaint_mode='conditioning'` needs an 18-channel (stage-2) denoiser")
        if self.unet.config.in_channels not in (STAGE1_CHANNELS, STAGE2_CHANNELS):
            raise ValueError(f"the denoiser has {self.unet.config.in_channels} input channels; expected 8 or 18")
        n_ref = len(_as_batch(reference_image))
        for name, value in (("image", image), ("depth", depth)):
            if value is not None and len(_as_batch(value)) != n_ref:
                raise ValueError(f"`{name}` must have one entry per reference image ({n_ref}), got {len(_as_batch(value))}")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"`output_type` must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")

    def _prepare_depth(self, depth, depth_valid, height: int, width: int, device) -> torch.Tensor:
        """Raw depths (larger = farther; arrays or tensors (H, W)) -> normalised ``(B, 1, height, width)``."""
        out = []
        valids = _as_batch(depth_valid) if depth_valid is not None else [None] * len(_as_batch(depth))
        for d, v in zip(_as_batch(depth), valids):
            d = torch.as_tensor(np.asarray(d, dtype=np.float32) if not torch.is_tensor(d) else d).float()
            d = d.reshape(d.shape[-2:])[None, None]  # (1, 1, H, W)
            v = torch.isfinite(d) if v is None else torch.as_tensor(np.asarray(v)).bool().reshape(d.shape)
            if d.shape[-2:] != (height, width):
                # nearest keeps hole boundaries sharp: no blending of depth with the background
                d = torch.nn.functional.interpolate(d, size=(height, width), mode="nearest")
                v = torch.nn.functional.interpolate(v.float(), size=(height, width), mode="nearest") > 0.5
            out.append(normalize_depth(torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0), v & torch.isfinite(d)))
        return torch.cat(out).to(device)

    def _prepare_mask(self, mask, default: float, batch: int, height: int, width: int, device) -> torch.Tensor:
        if mask is None:
            return torch.full((batch, 1, height, width), default, device=device)
        if isinstance(mask, (int, float)):
            return torch.full((batch, 1, height, width), float(mask), device=device)
        masks = _as_batch(mask)
        if len(masks) == 1 and batch > 1:
            masks = masks * batch
        if all(torch.is_tensor(m) or isinstance(m, np.ndarray) for m in masks):
            t = [torch.as_tensor(np.asarray(m, dtype=np.float32)).reshape(1, 1, *np.shape(m)[-2:]) for m in masks]
            t = torch.cat(t)
            if t.shape[-2:] != (height, width):
                t = torch.nn.functional.interpolate(t, size=(height, width), mode="nearest")
            return (t > 0.5).float().to(device)
        return self.mask_processor.preprocess(masks, height=height, width=width).to(device)

    def _extra_step_kwargs(self, generator) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        return {"generator": generator} if "generator" in params else {}

    # -------------------------------------------------------------------- call
    @torch.no_grad()
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
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> JointPortraitPipelineOutput | tuple:
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
            generator: torch generator(s) for determinism.
            latents: initial noise ``(N, 8, h, w)``.
            output_type: "pil", "np", "pt" or "latent".
        """
        # 1. Check inputs
        self.check_inputs(reference_image, height, width, num_inference_steps, guidance_scale,
                          num_images_per_reference, image, depth, inpaint_mode, output_type)
        device = self._execution_device
        dtype = self.unet.dtype
        if height is None or width is None:
            if image is not None:
                first = self.image_processor.preprocess(_as_batch(image)[0])
                height, width = first.shape[-2:]
                height -= height % self.vae_scale_factor
                width -= width % self.vae_scale_factor
            else:
                height = width = self.unet.config.sample_size * self.vae_scale_factor
        refs = self.image_processor.preprocess(_image_input(reference_image), height=height, width=width)
        refs = refs.to(device=device, dtype=self.vae.dtype)  # (R, 3, H, W)
        n_ref, per_ref = refs.shape[0], num_images_per_reference
        batch = n_ref * per_ref
        index = torch.arange(n_ref, device=device).repeat_interleave(per_ref)  # sample -> its reference
        do_cfg = guidance_scale > 1.0
        cross_dim = self.unet.config.cross_attention_dim

        # 2. Reference: latent, image embedding, ReferenceNet once at t = 0
        ref_vae_latents = encode_rgb(self.vae, refs)  # (R, 4, h, w)
        ref_latents = ref_vae_latents.to(dtype)
        ehs = reference_conditioning(self.image_encoder, refs, cross_dim, dtype)  # (R, 1, D)
        bank = self._joint.encode_reference(ref_latents, ehs)
        ehs = ehs[index]  # (N, 1, D)
        if do_cfg:
            bank = bank.select(
                torch.cat([index, index]),
                keep=torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device),
            )
            ehs = torch.cat([null_embedding(batch, cross_dim, device, dtype), ehs])
        elif per_ref > 1:
            bank = bank.select(index)

        # 3. Known domains: masks and latents
        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        mode = inpaint_mode
        if mode == "auto":
            mode = "conditioning" if self.is_inpainting_model else "replacement"
        rgb = None
        if image is not None:
            rgb = self.image_processor.preprocess(_image_input(image), height=height, width=width).to(device, self.vae.dtype)
        depth_n = self._prepare_depth(depth, depth_valid, height, width, device) if depth is not None else None
        m_rgb = self._prepare_mask(rgb_mask, 0.0 if rgb is not None else 1.0, n_ref, height, width, device)
        m_depth = self._prepare_mask(depth_mask, 0.0 if depth_n is not None else 1.0, n_ref, height, width, device)
        if rgb is None and bool((m_rgb < 0.5).any()):
            raise ValueError("`rgb_mask` keeps part of the image, but no `image` was given")
        if depth_n is None and bool((m_depth < 0.5).any()):
            raise ValueError("`depth_mask` keeps part of the depth, but no `depth` was given")
        rgb_in = rgb if rgb is not None else torch.zeros(n_ref, 3, height, width, device=device, dtype=self.vae.dtype)
        depth_in = depth_n if depth_n is not None else torch.ones(n_ref, 1, height, width, device=device)
        condition = known = None
        if mode == "conditioning":
            # depth estimation passes the photo as image and reference: encode it once
            same = rgb is not None and rgb.shape == refs.shape and torch.equal(rgb, refs)
            condition = build_inpainting_condition(
                self.vae, rgb_in, depth_in.to(self.vae.dtype), m_rgb, m_depth,
                rgb_latents=ref_vae_latents if same else None,
            ).select(index)
        elif rgb is not None or depth_n is not None:
            z_known = torch.cat([encode_rgb(self.vae, rgb_in), encode_depth(self.vae, depth_in.to(self.vae.dtype))], 1)
            c = self._joint.latent_channels
            gen_mask = torch.cat([latent_mask(m_rgb, latent_hw).expand(-1, c, -1, -1),
                                  latent_mask(m_depth, latent_hw).expand(-1, c, -1, -1)], 1)  # (R, 8, h, w)
            known = (z_known[index].to(dtype), gen_mask[index].to(dtype))

        # 4. Timesteps and initial noise
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        shape = (batch, 2 * self._joint.latent_channels, *latent_hw)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, dtype) * self.scheduler.init_noise_sigma
        known_noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype) if known else None
        step_kwargs = self._extra_step_kwargs(generator)
        if condition is not None and do_cfg:
            cond_channels = torch.cat([condition.as_channels()] * 2).to(dtype)
        elif condition is not None:
            cond_channels = condition.as_channels().to(dtype)

        # 5. Denoising loop
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            if condition is not None:
                model_in = torch.cat([model_in, cond_channels], dim=1)  # (N, 18, h, w)
            pred = self._joint(model_in, t, encoder_hidden_states=ehs, reference_bank=bank)  # (N, 8, h, w)
            if do_cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            latents = self.scheduler.step(pred, t, latents, **step_kwargs, return_dict=False)[0]
            if known is not None:
                z_known, gen_mask = known
                if i + 1 < len(timesteps):
                    z_known = self.scheduler.add_noise(z_known, known_noise, timesteps[i + 1 : i + 2])
                latents = gen_mask * latents + (1.0 - gen_mask) * z_known

        # 6. Decode
        c = self._joint.latent_channels
        if output_type == "latent":
            images, depths = latents[:, :c], latents[:, c:]
        else:
            images = decode_rgb(self.vae, latents[:, :c])  # (N, 3, H, W) in [-1, 1]
            depths = decode_depth(self.vae, latents[:, c:])[:, 0].float()  # (N, H, W) in [0, 1]
            images = self.image_processor.postprocess(images, output_type=output_type)
            if output_type != "pt":
                depths = depths.cpu().numpy().astype(np.float32)
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, depths
        return JointPortraitPipelineOutput(images=images, depths=depths)
