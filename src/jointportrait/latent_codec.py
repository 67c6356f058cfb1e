"""VAE encoding of RGB and depth into the joint latent (paper Sec. 3.2, eq. 3-4).

``z_x = E(x)`` and ``z_d = E(d)`` use the same (frozen) SD VAE; depth is
repeated to three channels. Latents are the posterior mean times the VAE's
scaling factor (deterministic, as Marigold does). Decoding depth averages the
three decoded channels.
"""

from __future__ import annotations

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


def decode_rgb(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> images ``(B, 3, H, W)`` clipped to [-1, 1]."""
    z = latents.to(device=vae.device, dtype=vae.dtype) / _scale(vae)
    return vae.decode(z).sample.clamp(-1.0, 1.0)


def decode_depth(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> relative depth ``(B, 1, H, W)`` in [0, 1] (mean of the decoded channels)."""
    decoded = decode_rgb(vae, latents)  # (B, 3, H, W)
    return normalized_to_relative(decoded.mean(dim=1, keepdim=True))
