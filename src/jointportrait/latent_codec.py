"""VAE encoding of RGB and depth into the joint latent (paper Sec. 3.2, eq. 3-4).

``z_x = E(x)`` and ``z_d = E(d)`` use the same (frozen) SD VAE; depth is
repeated to three channels. Latents are the posterior mean times the VAE's
scaling factor (deterministic, as Marigold does). Decoding depth averages the
three decoded channels.
"""

from __future__ import annotations

import weakref

import torch
from diffusers import AutoencoderKL

from jointportrait.depth_codec import normalized_to_relative


def _scale(vae: AutoencoderKL) -> float:
    return float(vae.config.scaling_factor)


def encode_rgb(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` in [-1, 1] -> latents ``(B, 4, H/8, W/8)``."""
    x = images.to(device=vae.device, dtype=vae.dtype)
    return vae.encode(x).latent_dist.mean * _scale(vae)


def encode_depth(vae: AutoencoderKL, depth_normalized: torch.Tensor) -> torch.Tensor:
    """Normalised depth ``(B, 1, H, W)`` in [-1, 1] -> latents ``(B, 4, H/8, W/8)``."""
    return encode_rgb(vae, depth_normalized.expand(-1, 3, -1, -1))


# vae -> {(height, width, autocast dtype or None, tiled): (weights' fingerprint, latent)}
_BLANK_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_fingerprint(vae: AutoencoderKL) -> tuple:
    """Changes whenever a weight is replaced (``.to``, ``load_state_dict``) or updated in place (an optimizer)."""
    return tuple((p.data_ptr(), p.dtype, p._version) for p in vae.parameters())


def encode_blank(vae: AutoencoderKL, height: int, width: int) -> torch.Tensor:
    """``encode_rgb`` of an all-zero ``(1, 3, height, width)`` input (a blanked RGB image or depth map, the
    masked input of a domain generated whole, Sec. 4), ``(1, 4, height/8, width/8)``.

    Every depth estimate and joint sample needs it; it depends only on the VAE's weights and the size,
    so it is encoded once and kept (per VAE, size, autocast dtype and tiling) until a weight changes. With
    gradients flowing into the VAE it is encoded every time."""
    autocast = torch.get_autocast_dtype(vae.device.type) if torch.is_autocast_enabled(vae.device.type) else None
    if torch.is_grad_enabled() and any(p.requires_grad for p in vae.parameters()):
        return encode_rgb(vae, torch.zeros(1, 3, height, width))
    cache = _BLANK_CACHE.setdefault(vae, {})
    key = (height, width, autocast, bool(getattr(vae, "use_tiling", False)))
    fingerprint = _weights_fingerprint(vae)
    kept = cache.get(key)
    if kept is None or kept[0] != fingerprint:
        with torch.no_grad():
            latent = encode_rgb(vae, torch.zeros(1, 3, height, width))
        cache[key] = kept = (fingerprint, latent)
    return kept[1]


LATENT_SOURCES = ("image", "depth", "reference")  # batch keys whose latents a training batch may carry


def batch_latents(vae: AutoencoderKL, batch: dict, key: str) -> torch.Tensor:
    """Latents of ``batch[key]`` (``"image"``/``"reference"``: RGB; ``"depth"``: normalised depth).

    A batch of a latent-cached training set
    (:class:`~jointportrait.training.latent_cache.LatentCache`) carries them
    already as ``batch[key + "_latents"]``, encoded once before training; other
    batches are encoded now. Both give ``encode_rgb`` / ``encode_depth`` of the item.
    """
    if key not in LATENT_SOURCES:
        raise KeyError(f"no latents for batch key {key!r} (known: {', '.join(LATENT_SOURCES)})")
    cached = batch.get(f"{key}_latents")
    if cached is not None:
        return cached.to(device=vae.device, dtype=vae.dtype)
    return encode_depth(vae, batch[key]) if key == "depth" else encode_rgb(vae, batch[key])


def decode_rgb(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> images ``(B, 3, H, W)`` clipped to [-1, 1]."""
    z = latents.to(device=vae.device, dtype=vae.dtype) / _scale(vae)
    return vae.decode(z).sample.clamp(-1.0, 1.0)


def decode_depth(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> relative depth ``(B, 1, H, W)`` in [0, 1] (mean of the decoded channels)."""
    decoded = decode_rgb(vae, latents)  # (B, 3, H, W)
    return normalized_to_relative(decoded.mean(dim=1, keepdim=True))
