"""What every portrait pipeline of the project shares (paper Sec. 3.2, 4; DESIGN.md "Fixed conventions").

The joint pipeline and the pipelines of the paper's baselines take the same
inputs (identity references; a known image and/or raw depth per reference;
masks) and return the same output (:class:`PortraitPipelineOutput`). This base
class holds the steps they share: input preprocessing, the reference's
cross-attention states with the rows of classifier-free guidance, initial
latents, and decoding only the domains a caller asks for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.depth_codec import normalize_depth
from jointportrait.latent_codec import decode_depth, decode_rgb, encode_rgb
from jointportrait.models.image_condition import null_embedding, reference_conditioning
from jointportrait.models.reference_attention import ReferenceBank
from jointportrait.pipelines.denoising import guidance_keep

DOMAINS = ("rgb", "depth")
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class PortraitPipelineOutput(BaseOutput):
    """``images``: PIL list or (N, H, W, 3) float array in [0, 1]; ``depths``: (N, H, W) float32 in [0, 1]
    (relative depth, 0 = near, 1 = far). With ``output_type="latent"`` both are latents. A domain the
    method does not generate, or that ``output_domains`` leaves out, is None."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor | None
    depths: np.ndarray | torch.Tensor | None


def check_reference_embedding(recorded: str | None, image_encoder) -> str:
    """``"clip"`` with an image encoder, ``"null"`` without; a recorded value must agree (a model folder
    whose ``model_index.json`` says ``clip`` but lost its ``image_encoder/`` is refused)."""
    actual = "clip" if image_encoder is not None else "null"
    if recorded is not None and recorded != actual:
        raise ValueError(f"the model records reference_embedding={recorded!r} but "
                         f"{'has' if image_encoder is not None else 'has no'} image encoder")
    return actual


def as_batch(x: Any) -> list:
    """A list with one entry per item; a 4-D array or tensor counts as a batch."""
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4:
        return list(x)
    return [x]


def image_input(x: Any) -> Any:
    """Images for ``VaeImageProcessor.preprocess``: batched arrays/tensors stay whole."""
    return x if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4 else as_batch(x)


@dataclass
class ReferenceInputs:
    """The references of one call, encoded once."""

    images: torch.Tensor  # (R, 3, H, W) in [-1, 1], VAE dtype
    latents: torch.Tensor  # (R, 4, h, w) VAE latents, VAE dtype
    embeddings: torch.Tensor  # (R, 1, D) cross-attention states, denoiser dtype
    index: torch.Tensor  # (N,) sample -> its reference


def device_fixed_per_call(call: Callable) -> Callable:
    """Decorator of a pipeline's ``__call__``: the execution device is looked up once per call.

    Each lookup of diffusers' ``_execution_device`` walks every module of every component
    (about 9 ms on the sampling benchmark's model); a call asks for it several times.
    """
    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        if self._call_device is not None:  # a call inside a call
            return call(self, *args, **kwargs)
        self._call_device = DiffusionPipeline._execution_device.fget(self)
        try:
            return call(self, *args, **kwargs)
        finally:
            self._call_device = None

    return wrapper


class PortraitPipelineBase(DiffusionPipeline):
    """Shared steps; subclasses register ``vae``, ``unet``, ``scheduler`` and ``image_encoder``."""

    _call_device: torch.device | None = None  # set during a call (:func:`device_fixed_per_call`)

    @property
    def _execution_device(self) -> torch.device:
        return self._call_device if self._call_device is not None else super()._execution_device

    def _init_processors(self) -> None:
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.mask_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_normalize=False, do_binarize=True, do_convert_grayscale=True
        )

    # ------------------------------------------------------------------ checks
    def check_common_inputs(self, reference_image, height, width, num_inference_steps, guidance_scale,
                            num_images_per_reference, output_type, output_domains, generator) -> None:
        if reference_image is None or len(as_batch(reference_image)) == 0:
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
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        if not output_domains or set(output_domains) - set(DOMAINS):
            raise ValueError(f"`output_domains` must be a non-empty subset of {DOMAINS}, got {output_domains!r}")
        if isinstance(generator, list):
            n = len(as_batch(reference_image)) * num_images_per_reference
            if len(generator) != n:
                raise ValueError(f"`generator` is a list of {len(generator)} generators; expected one per sample ({n})")

    @staticmethod
    def check_per_reference(name: str, value, n_ref: int) -> None:
        """``value`` (an image, depth or mask input) must have one entry per reference."""
        if value is not None and not isinstance(value, (int, float)) and len(as_batch(value)) != n_ref:
            raise ValueError(f"`{name}` must have one entry per reference image ({n_ref}), got {len(as_batch(value))}")

    # ------------------------------------------------------------ preprocessing
    def resolve_size(self, height: int | None, width: int | None, image=None, depth=None) -> tuple[int, int]:
        """The output size: given, else the known image's, else the known depth's (cut to the VAE factor),
        else the UNet's native size."""
        if height is not None and width is not None:
            return height, width
        if image is not None:
            h, w = self.image_processor.preprocess(as_batch(image)[0]).shape[-2:]
        elif depth is not None:
            h, w = np.shape(as_batch(depth)[0])[-2:]
        else:
            side = self.unet.config.sample_size * self.vae_scale_factor
            return side, side
        return h - h % self.vae_scale_factor, w - w % self.vae_scale_factor

    def preprocess_images(self, images, height: int, width: int) -> torch.Tensor:
        """Images in diffusers' conventions -> ``(B, 3, height, width)`` in [-1, 1] on the device, VAE dtype."""
        out = self.image_processor.preprocess(image_input(images), height=height, width=width)
        return out.to(device=self._execution_device, dtype=self.vae.dtype)

    def prepare_depth(self, depth, depth_valid, height: int, width: int) -> torch.Tensor:
        """Raw depths (larger = farther; arrays or tensors (H, W)) -> normalised ``(B, 1, height, width)``."""
        out = []
        valids = as_batch(depth_valid) if depth_valid is not None else [None] * len(as_batch(depth))
        for d, v in zip(as_batch(depth), valids):
            d = torch.as_tensor(np.asarray(d, dtype=np.float32) if not torch.is_tensor(d) else d).float()
            d = d.reshape(d.shape[-2:])[None, None]  # (1, 1, H, W)
            v = torch.isfinite(d) if v is None else torch.as_tensor(np.asarray(v)).bool().reshape(d.shape)
            if d.shape[-2:] != (height, width):
                # nearest keeps hole boundaries sharp: no blending of depth with the background
                d = torch.nn.functional.interpolate(d, size=(height, width), mode="nearest")
                v = torch.nn.functional.interpolate(v.float(), size=(height, width), mode="nearest") > 0.5
            out.append(normalize_depth(torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0), v & torch.isfinite(d)))
        return torch.cat(out).to(self._execution_device)

    def prepare_mask(self, mask, default: float, batch: int, height: int, width: int) -> torch.Tensor:
        """A scalar or one (H, W) mask per reference -> ``(batch, 1, height, width)`` in {0, 1}."""
        device = self._execution_device
        if mask is None:
            return torch.full((batch, 1, height, width), default, device=device)
        if isinstance(mask, (int, float)):
            return torch.full((batch, 1, height, width), float(mask), device=device)
        masks = as_batch(mask)
        if all(torch.is_tensor(m) or isinstance(m, np.ndarray) for m in masks):
            t = torch.cat([torch.as_tensor(np.asarray(m, dtype=np.float32)).reshape(1, 1, *np.shape(m)[-2:])
                           for m in masks])
            if t.shape[-2:] != (height, width):
                t = torch.nn.functional.interpolate(t, size=(height, width), mode="nearest")
            return (t > 0.5).float().to(device)
        return self.mask_processor.preprocess(masks, height=height, width=width).to(device)

    # ---------------------------------------------------------------- reference
    def encode_references(self, reference_image, height: int, width: int, per_reference: int) -> ReferenceInputs:
        """Preprocess and VAE-encode the references; their cross-attention states (CLIP image embedding or
        the null embedding)."""
        refs = self.preprocess_images(reference_image, height, width)  # (R, 3, H, W)
        latents = encode_rgb(self.vae, refs)  # (R, 4, h, w)
        embeddings = reference_conditioning(self.image_encoder, refs, self.unet.config.cross_attention_dim,
                                            self.unet.dtype)  # (R, 1, D)
        index = torch.arange(refs.shape[0], device=refs.device).repeat_interleave(per_reference)
        return ReferenceInputs(refs, latents, embeddings, index)

    @staticmethod
    def bank_rows(bank: ReferenceBank, refs: ReferenceInputs, do_cfg: bool) -> ReferenceBank:
        """The reference bank with one row per denoiser row: ``[uncond; cond]`` with guidance, one row per
        sample otherwise (the bank itself when every reference has one sample)."""
        batch = refs.index.shape[0]
        if do_cfg:
            return bank.select(torch.cat([refs.index, refs.index]), keep=guidance_keep(batch, refs.index.device))
        if batch > refs.latents.shape[0]:
            return bank.select(refs.index)
        return bank

    def sample_embeddings(self, refs: ReferenceInputs, do_cfg: bool) -> torch.Tensor:
        """Cross-attention states per denoiser row: ``(N, 1, D)``, or ``[null; cond]`` ``(2N, 1, D)`` with guidance."""
        ehs = refs.embeddings[refs.index]  # (N, 1, D)
        if do_cfg:
            ehs = torch.cat([null_embedding(ehs.shape[0], ehs.shape[-1], ehs.device, ehs.dtype), ehs])
        return ehs

    # ------------------------------------------------------------------ latents
    def initial_latents(self, shape: tuple[int, ...], scheduler, generator, latents: torch.Tensor | None):
        """Gaussian noise of ``shape`` (or the given ``latents``) scaled by the scheduler's initial sigma."""
        dtype = self.unet.dtype
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(self._execution_device, dtype) * scheduler.init_noise_sigma

    # ----------------------------------------------------------------- decoding
    def decode(self, rgb_latents: torch.Tensor | None, depth_latents: torch.Tensor | None,
               output_domains: tuple[str, ...], output_type: str,
               decode_chunk_size: int | None = None) -> PortraitPipelineOutput:
        """Decode the domains asked for (latents pass through with ``output_type="latent"``), at most
        ``decode_chunk_size`` latents at a time (None: all at once); the VAE decodes every sample on its own,
        so chunks change memory, not results."""
        images = rgb_latents if "rgb" in output_domains else None
        depths = depth_latents if "depth" in output_domains else None
        if output_type == "latent":
            return PortraitPipelineOutput(images=images, depths=depths)

        def chunked(decode, latents: torch.Tensor) -> torch.Tensor:
            size = decode_chunk_size or latents.shape[0]
            return torch.cat([decode(self.vae, part) for part in latents.split(size)])

        if images is not None:
            images = self.image_processor.postprocess(chunked(decode_rgb, images), output_type=output_type)
        if depths is not None:
            depths = chunked(decode_depth, depths)[:, 0].float()  # (N, H, W) in [0, 1]
            if output_type != "pt":
                depths = depths.cpu().numpy().astype(np.float32)
        return PortraitPipelineOutput(images=images, depths=depths)
