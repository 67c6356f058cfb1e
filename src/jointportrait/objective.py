"""The joint training objective, paper eq. 3-5.

RGB and depth latents get *independent* noise at the *same* timestep; the
denoiser predicts the concatenated noise ``[eps_x, eps_d]`` (or the
concatenated velocity with ``prediction_type="v_prediction"``) and the loss is
the MSE over all 8 channels. With reference dropout a sample loses both its
ReferenceNet features and its image embedding, which trains the unconditional
branch used by classifier-free guidance.

The trainer calls :func:`joint_diffusion_loss` with a batch and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.schedulers import SchedulerMixin

from jointportrait.conditioning import STAGE2_CHANNELS, build_inpainting_condition, denoiser_input
from jointportrait.latent_codec import encode_depth, encode_rgb
from jointportrait.models.image_condition import reference_conditioning
from jointportrait.models.joint_denoiser import JointDenoiser

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class JointLoss:
    loss: torch.Tensor  # scalar, eq. 5
    loss_rgb: torch.Tensor  # scalar, RGB half (for logging)
    loss_depth: torch.Tensor  # scalar, depth half (for logging)


def _unwrap(model: torch.nn.Module) -> JointDenoiser:
    inner = getattr(model, "module", model)  # DDP / accelerate wrappers
    if not isinstance(inner, JointDenoiser):
        raise TypeError(f"expected a JointDenoiser, got {type(inner).__name__}")
    return inner


def joint_diffusion_loss(
    model: torch.nn.Module,
    vae: AutoencoderKL,
    noise_scheduler: SchedulerMixin,
    batch: dict[str, torch.Tensor],
    image_encoder: torch.nn.Module | None = None,
    reference_dropout: float = 0.0,
    prediction_type: str | None = None,
    generator: torch.Generator | None = None,
) -> JointLoss:
    """Loss of eq. 5 for one batch.

    ``batch``: ``image`` (B, 3, H, W) and ``reference`` (B, 3, H, W) in [-1, 1],
    ``depth`` (B, 1, H, W) normalised to [-1, 1]; for an 18-channel (stage 2)
    denoiser also ``rgb_mask`` and ``depth_mask`` (B, 1, H, W), 1 = generate.
    ``model`` is a :class:`JointDenoiser`, possibly wrapped by DDP.
    """
    joint = _unwrap(model)
    prediction_type = prediction_type or noise_scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    unet = joint.unet
    param = next(unet.parameters())
    images, depth, reference = batch["image"], batch["depth"], batch["reference"]
    bsz = images.shape[0]
    rng_device = generator.device if generator is not None else param.device

    with torch.no_grad():
        z_x = encode_rgb(vae, images)  # (B, 4, h, w)
        z_d = encode_depth(vae, depth)  # (B, 4, h, w)
        z_ref = encode_rgb(vae, reference)  # (B, 4, h, w)
        condition = None
        if unet.config.in_channels == STAGE2_CHANNELS:
            if "rgb_mask" not in batch or "depth_mask" not in batch:
                raise ValueError("an 18-channel denoiser needs 'rgb_mask' and 'depth_mask' in the batch")
            condition = build_inpainting_condition(vae, images, depth, batch["rgb_mask"], batch["depth_mask"])
        keep = None
        if reference_dropout > 0:
            keep = torch.rand(bsz, generator=generator, device=rng_device) >= reference_dropout
            keep = keep.to(param.device)
        ehs = reference_conditioning(
            image_encoder, reference.to(param.device), unet.config.cross_attention_dim, param.dtype, keep
        )

    z0 = torch.cat([z_x, z_d], dim=1).to(param.device, param.dtype)  # (B, 8, h, w)
    noise = torch.randn(z0.shape, generator=generator, device=rng_device).to(z0)  # [eps_x, eps_d], independent
    t = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=generator, device=rng_device
    ).to(param.device)  # one timestep per sample, shared by both domains
    noisy = noise_scheduler.add_noise(z0, noise, t)  # eq. 3-4
    target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(z0, noise, t)

    pred = model(
        denoiser_input(noisy, condition),
        t,
        encoder_hidden_states=ehs,
        reference_latents=z_ref.to(param.device, param.dtype),
        reference_keep=keep,
    )  # (B, 8, h, w)
    pred, target = pred.float(), target.float()
    c = joint.latent_channels
    loss = F.mse_loss(pred, target)
    with torch.no_grad():
        loss_rgb = F.mse_loss(pred[:, :c], target[:, :c])
        loss_depth = F.mse_loss(pred[:, c:], target[:, c:])
    return JointLoss(loss, loss_rgb, loss_depth)
