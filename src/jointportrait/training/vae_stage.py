"""The VAE stage: an ``AutoencoderKL`` for the joint latent space, trained on RGB and depth.

The paper uses SD 1.5's pretrained VAE, frozen (Sec. 3.1-3.2). No pretrained VAE
can be downloaded here, so the demo and the tiny reproductions first train a
small ``AutoencoderKL`` on the synthetic RGB images *and* depth maps (depth
normalised to [-1, 1] and repeated to three channels, as the latent codec feeds
it). With real SD 1.5 weights this stage is skipped, or run with
``vae.train_encoder: false`` to fine-tune only the decoder, which keeps the
latent space of the pretrained UNet unchanged.

Loss per image: L1 reconstruction of the posterior *mean* decoding (what the
codec uses at inference) + ``kl_weight`` x KL(q(z|x) || N(0, I)) on a sampled
latent, as in LDM's autoencoder without the adversarial and perceptual terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

KL_WEIGHT = 1e-6
STD_DECAY = 0.99


@dataclass
class VAELoss:
    loss: torch.Tensor
    loss_rgb: torch.Tensor  # reconstruction L1 of the RGB images
    loss_depth: torch.Tensor  # reconstruction L1 of the depth maps


class VAETrainingModule(torch.nn.Module):
    """Wraps the autoencoder so the trainer treats it like any other trained model."""

    def __init__(self, vae: AutoencoderKL, train_encoder: bool = True) -> None:
        super().__init__()
        self.vae = vae
        self.train_encoder = train_encoder
        if not train_encoder:
            for module in (vae.encoder, vae.quant_conv):
                if module is not None:
                    module.requires_grad_(False)
        # Moving average of the latent standard deviation (bias-corrected): the export sets
        # scaling_factor = 1 / std so that the diffusion model sees unit-variance latents (LDM's rule
        # behind SD's 0.18215).
        self.register_buffer("latent_std_ema", torch.zeros((), dtype=torch.float64))
        self.register_buffer("latent_std_count", torch.zeros((), dtype=torch.float64))

    def forward(self, images: torch.Tensor):
        posterior = self.vae.encode(images).latent_dist  # mean/std (B, 4, h, w)
        recon = self.vae.decode(posterior.mean).sample  # (B, 3, H, W)
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        if self.training:
            with torch.no_grad():
                std = posterior.mean.float().std().double()
                self.latent_std_ema.mul_(STD_DECAY).add_((1.0 - STD_DECAY) * std)
                self.latent_std_count += 1
        return recon, kl

    def scaling_factor(self) -> float:
        """1 / latent std; a frozen encoder keeps its latent space, and so its scaling factor."""
        if not self.train_encoder or float(self.latent_std_count) == 0:
            return float(self.vae.config.scaling_factor)
        std = float(self.latent_std_ema) / (1.0 - STD_DECAY ** float(self.latent_std_count))
        return 1.0 / max(std, 1e-6)


def tiny_vae(levels: int = 3, seed: int = 0, sample_size: int = 64) -> AutoencoderKL:
    """A small ``AutoencoderKL``: ``levels`` resolutions, so 2**(levels-1) downsampling (3 levels: 64 -> 16).

    Its random weights are a function of ``seed`` alone. torch modules initialise from the global
    generator, so it is seeded inside a fork that restores the caller's random state afterwards.
    """
    widths = (16, 32, 64, 64)[:levels]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=widths, layers_per_block=1,
            latent_channels=4, norm_num_groups=16, sample_size=sample_size,
        )


def vae_loss(model: torch.nn.Module, vae, scheduler, batch: dict[str, torch.Tensor], image_encoder=None,
             reference_dropout: float = 0.0, prediction_type=None, generator=None,
             kl_weight: float = KL_WEIGHT, with_depth: bool = True) -> VAELoss:
    """Reconstruction + KL loss on ``batch["image"]`` (B, 3, H, W) and, with ``with_depth``, on
    ``batch["depth"]`` (B, 1, H, W); without it ``loss_depth`` is reported as 0 (RGB-only, as SD's VAE)."""
    images = batch["image"]
    x = torch.cat([images, batch["depth"].expand(-1, 3, -1, -1)]) if with_depth else images  # (2B or B, 3, H, W)
    recon, kl = model(x)
    err = (recon.float() - x.float()).abs()  # (2B or B, 3, H, W)
    b = images.shape[0]
    loss_rgb = err[:b].mean()
    loss_depth = err[b:].mean() if with_depth else loss_rgb.new_zeros(())
    loss = F.l1_loss(recon.float(), x.float()) + kl_weight * kl.float()
    return VAELoss(loss, loss_rgb.detach(), loss_depth.detach())


def export_vae(model: torch.nn.Module, out: Path) -> None:
    """Save the autoencoder in diffusers layout (``AutoencoderKL.from_pretrained(out)`` loads it)."""
    inner = getattr(model, "module", model)
    inner.vae.register_to_config(scaling_factor=inner.scaling_factor())
    inner.vae.save_pretrained(out, safe_serialization=True)
