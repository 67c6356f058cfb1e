"""The training objectives: the joint loss of eq. 3-5 and the losses of the paper's baselines (Sec. 5.2, 9).

RGB and depth latents get *independent* noise at the *same* timestep; the
denoiser predicts the concatenated noise ``[eps_x, eps_d]`` (or the
concatenated velocity with ``prediction_type="v_prediction"``) and the loss is
the MSE over all 8 channels. With reference dropout a sample loses both its
ReferenceNet features and its image embedding, which trains the unconditional
branch used by classifier-free guidance.

The baselines share the noising and the batch encoding: "w/o joint learning"
(:func:`conditional_diffusion_loss`, the target domain's noise only) and "w/o
ReferenceNet" (:func:`concat_reference_loss`, eq. 5 with the reference latent as
input channels). :func:`one_step_depth_loss` fine-tunes a stage-2 model into a
deterministic one-step depth estimator (E2E-FT, Martin Garcia et al. 2024,
"Fine-tuning image-conditional diffusion models is easier than you think").
Every loss has one signature, ``(model, vae, scheduler, batch,
image_encoder=, reference_dropout=, prediction_type=, generator=)``, and returns
a :class:`JointLoss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.schedulers import SchedulerMixin

from jointportrait.alignment import align_scale_shift
from jointportrait.conditioning import TASKS, build_inpainting_condition, denoiser_input
from jointportrait.latent_codec import batch_latents, decode_rgb, encode_rgb
from jointportrait.models.baselines import IMAGE_TO_DEPTH, ConcatReferenceDenoiser, ConditionalDenoiser
from jointportrait.models.image_condition import null_embedding, reference_conditioning
from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.video_denoiser import VideoJointDenoiser

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass
class JointLoss:
    loss: torch.Tensor  # scalar, eq. 5
    loss_rgb: torch.Tensor  # scalar, RGB half (for logging)
    loss_depth: torch.Tensor  # scalar, depth half (for logging)


def unwrap(model: torch.nn.Module, cls: type = JointDenoiser) -> torch.nn.Module:
    """The ``cls`` module inside DDP / accelerate wrappers (a TypeError for any other module)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(inner).__name__}")
    return inner


@dataclass
class EncodedBatch:
    """A training batch in latent space, on the trained model's device and dtype."""

    image: torch.Tensor  # z_x (B, 4, h, w)
    depth: torch.Tensor  # z_d (B, 4, h, w)
    reference: torch.Tensor  # reference latent (B, 4, h, w)
    encoder_hidden_states: torch.Tensor  # (B, 1, D)
    keep: torch.Tensor | None  # (B,) reference kept, or None without reference dropout


@torch.no_grad()
def encode_batch(
    vae: AutoencoderKL,
    image_encoder: torch.nn.Module | None,
    batch: dict[str, torch.Tensor],
    param: torch.Tensor,
    cross_dim: int,
    reference_dropout: float,
    generator: torch.Generator | None,
) -> EncodedBatch:
    """Latents of ``batch``'s ``image``, ``depth`` and ``reference`` (cached in the batch or encoded now)
    and the cross-attention states of the references, for the losses of every model kind.

    With ``reference_dropout > 0`` each sample keeps its reference with probability
    ``1 - reference_dropout``; a dropped one also gets the null embedding.
    """
    reference = batch["reference"]
    keep = None
    if reference_dropout > 0:
        rng_device = generator.device if generator is not None else param.device
        keep = torch.rand(reference.shape[0], generator=generator, device=rng_device) >= reference_dropout
        keep = keep.to(param.device)
    ehs = reference_conditioning(image_encoder, reference.to(param.device), cross_dim, param.dtype, keep)
    return EncodedBatch(*(batch_latents(vae, batch, key).to(param.device, param.dtype)
                          for key in ("image", "depth", "reference")), ehs, keep)


def noised_latents_and_target(
    z0: torch.Tensor,
    noise_scheduler: SchedulerMixin,
    prediction_type: str | None,
    generator: torch.Generator | None,
    rows_per_timestep: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 3-4: noisy latents, timesteps ``(B,)`` (one per sample, shared by all its channels) and the
    regression target (the noise, or the velocity for ``v_prediction``).

    ``rows_per_timestep``: consecutive rows that share one timestep (the frames of a clip, Sec. 5.5); the
    timesteps returned are then one per group, ``(B / rows_per_timestep,)``.
    """
    prediction_type = prediction_type or noise_scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    if z0.shape[0] % rows_per_timestep:
        raise ValueError(f"{z0.shape[0]} rows are not groups of {rows_per_timestep}")
    rng_device = generator.device if generator is not None else z0.device
    noise = torch.randn(z0.shape, generator=generator, device=rng_device).to(z0)  # independent per channel
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (z0.shape[0] // rows_per_timestep,),
                      generator=generator, device=rng_device).to(z0.device)
    t_rows = t.repeat_interleave(rows_per_timestep) if rows_per_timestep > 1 else t
    noisy = noise_scheduler.add_noise(z0, noise, t_rows)
    target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(z0, noise, t_rows)
    return noisy, t, target


def split_loss(pred: torch.Tensor, target: torch.Tensor, channels: int) -> JointLoss:
    """MSE over all channels (eq. 5) and, for logging, over the RGB and depth halves."""
    pred, target = pred.float(), target.float()
    with torch.no_grad():
        loss_rgb = F.mse_loss(pred[:, :channels], target[:, :channels])
        loss_depth = F.mse_loss(pred[:, channels:], target[:, channels:])
    return JointLoss(F.mse_loss(pred, target), loss_rgb, loss_depth)


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
    joint = unwrap(model)
    unet = joint.unet
    param = next(unet.parameters())
    z = encode_batch(vae, image_encoder, batch, param, unet.config.cross_attention_dim, reference_dropout, generator)
    condition = None
    if joint.is_inpainting:
        if "rgb_mask" not in batch or "depth_mask" not in batch:
            raise ValueError("an 18-channel denoiser needs 'rgb_mask' and 'depth_mask' in the batch")
        with torch.no_grad():
            condition = build_inpainting_condition(vae, batch["image"], batch["depth"], batch["rgb_mask"],
                                                   batch["depth_mask"], rgb_latents=z.image, depth_latents=z.depth)

    z0 = torch.cat([z.image, z.depth], dim=1)  # (B, 8, h, w)
    noisy, t, target = noised_latents_and_target(z0, noise_scheduler, prediction_type, generator)
    pred = model(
        denoiser_input(noisy, condition),
        t,
        encoder_hidden_states=z.encoder_hidden_states,
        reference_latents=z.reference,
        reference_keep=z.keep,
    )  # (B, 8, h, w)
    return split_loss(pred, target, joint.latent_channels)


def conditional_diffusion_loss(
    model: torch.nn.Module,
    vae: AutoencoderKL,
    noise_scheduler: SchedulerMixin,
    batch: dict[str, torch.Tensor],
    image_encoder: torch.nn.Module | None = None,
    reference_dropout: float = 0.0,
    prediction_type: str | None = None,
    generator: torch.Generator | None = None,
) -> JointLoss:
    """Loss of a "w/o joint learning" network (Sec. 5.2): MSE on the target domain's noise only.

    Same ``batch`` as :func:`joint_diffusion_loss` (``image``, ``depth``,
    ``reference``). The half the network does not predict is reported as 0
    (``loss_rgb`` for image -> depth, ``loss_depth`` for depth -> image).
    """
    cond_model = unwrap(model, ConditionalDenoiser)
    unet = cond_model.unet
    z = encode_batch(vae, image_encoder, batch, next(unet.parameters()), unet.config.cross_attention_dim,
                     reference_dropout, generator)
    target_z, cond_z = (z.depth, z.image) if cond_model.direction == IMAGE_TO_DEPTH else (z.image, z.depth)
    noisy, t, target = noised_latents_and_target(target_z, noise_scheduler, prediction_type, generator)
    pred = model(torch.cat([noisy, cond_z], dim=1), t, encoder_hidden_states=z.encoder_hidden_states,  # 8 ch in
                 reference_latents=z.reference, reference_keep=z.keep)  # (B, 4, h, w)
    loss = F.mse_loss(pred.float(), target.float())
    zero = loss.detach().new_zeros(())
    if cond_model.direction == IMAGE_TO_DEPTH:
        return JointLoss(loss, zero, loss.detach())
    return JointLoss(loss, loss.detach(), zero)


def concat_reference_loss(
    model: torch.nn.Module,
    vae: AutoencoderKL,
    noise_scheduler: SchedulerMixin,
    batch: dict[str, torch.Tensor],
    image_encoder: torch.nn.Module | None = None,
    reference_dropout: float = 0.0,
    prediction_type: str | None = None,
    generator: torch.Generator | None = None,
) -> JointLoss:
    """Eq. 5 for the "w/o ReferenceNet" ablation (Sec. 9): joint noise MSE, reference latent as extra input."""
    concat = unwrap(model, ConcatReferenceDenoiser)
    unet = concat.unet
    z = encode_batch(vae, image_encoder, batch, next(unet.parameters()), unet.config.cross_attention_dim,
                     reference_dropout, generator)
    z0 = torch.cat([z.image, z.depth], dim=1)  # (B, 8, h, w)
    noisy, t, target = noised_latents_and_target(z0, noise_scheduler, prediction_type, generator)
    pred = model(noisy, t, encoder_hidden_states=z.encoder_hidden_states, reference_latents=z.reference,
                 reference_keep=z.keep)  # (B, 8, h, w)
    return split_loss(pred, target, z.image.shape[1])


def predicted_clean(pred: torch.Tensor, noisy: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
                    ) -> torch.Tensor:
    """The clean latent the model predicts at a timestep with cumulative alpha ``alpha_bar`` (DDIM's x0):
    ``(x_t - sqrt(1 - a) eps) / sqrt(a)`` for epsilon, ``sqrt(a) x_t - sqrt(1 - a) v`` for v-prediction."""
    if prediction_type == "epsilon":
        return (noisy - (1.0 - alpha_bar).sqrt() * pred) / alpha_bar.sqrt()
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * noisy - (1.0 - alpha_bar).sqrt() * pred
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def affine_invariant_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the L1 error of ``pred`` after its least-squares scale and shift to ``target``,
    over ``mask`` (all ``(B, 1, H, W)``; E2E-FT's depth loss). Differentiable through the alignment."""
    errors = []
    for p, g, m in zip(pred.float(), target.float(), mask.bool()):
        aligned, _, _ = align_scale_shift(p, g, m)
        errors.append((aligned - g)[m].abs().mean() if bool(m.any()) else p.sum() * 0.0)
    return torch.stack(errors).mean()


def one_step_depth_loss(
    model: torch.nn.Module,
    vae: AutoencoderKL,
    noise_scheduler: SchedulerMixin,
    batch: dict[str, torch.Tensor],
    image_encoder: torch.nn.Module | None = None,
    reference_dropout: float = 0.0,
    prediction_type: str | None = None,
    generator: torch.Generator | None = None,
) -> JointLoss:
    """E2E-FT loss of a stage-2 denoiser as a one-step depth estimator (paper Sec. 5.3; Martin Garcia et al.).

    The step the estimator takes at inference, in training: depth-estimation masks (photo known, depth
    generated), the photo as its own reference (``estimate-depth``'s default), zero latents (the
    noise's mean) at the last training timestep; the predicted clean depth latent is decoded by the
    frozen VAE (gradients pass through it) and compared with the ground-truth depth by an
    affine-invariant L1 over the valid pixels (``batch["valid"]`` when present). No reference dropout:
    a one-step estimate uses no guidance.
    """
    joint = unwrap(model)
    if not joint.is_inpainting:
        raise ValueError("the one-step depth loss fine-tunes an 18-channel (stage-2) denoiser")
    unet = joint.unet
    param = next(unet.parameters())
    as_reference = {**batch, "reference": batch["image"], "reference_latents": batch.get("image_latents")}
    z = encode_batch(vae, image_encoder, as_reference, param, unet.config.cross_attention_dim, 0.0, generator)
    rgb_mask, depth_mask = TASKS["depth_estimation"].masks(like=batch["depth"])
    with torch.no_grad():
        condition = build_inpainting_condition(vae, batch["image"], batch["depth"], rgb_mask, depth_mask,
                                               rgb_latents=z.image, depth_latents=z.depth)
    c = joint.latent_channels
    zeros = torch.zeros_like(torch.cat([z.image, z.depth], dim=1))  # (B, 8, h, w): zero noise
    last = noise_scheduler.config.num_train_timesteps - 1
    t = torch.full((zeros.shape[0],), last, device=zeros.device, dtype=torch.long)
    pred = model(denoiser_input(zeros, condition), t, encoder_hidden_states=z.encoder_hidden_states,
                 reference_latents=z.reference)  # (B, 8, h, w)
    alpha_bar = noise_scheduler.alphas_cumprod[last].to(pred.device, torch.float32)
    prediction_type = prediction_type or noise_scheduler.config.prediction_type
    depth_latent = predicted_clean(pred[:, c:].float(), zeros[:, c:].float(), alpha_bar, prediction_type)
    depth = decode_rgb(vae, depth_latent).float().mean(dim=1, keepdim=True)  # (B, 1, H, W) in [-1, 1]
    target = batch["depth"].to(depth.device, torch.float32)
    valid = batch["valid"].to(depth.device) > 0.5 if "valid" in batch else torch.ones_like(target, dtype=torch.bool)
    loss = affine_invariant_l1(depth, target, valid)
    return JointLoss(loss, loss.detach().new_zeros(()), loss.detach())


FRAME_KEYS = ("image", "depth", "image_latents", "depth_latents")  # (B, F, ...) in a clip batch


def video_diffusion_loss(
    model: torch.nn.Module,
    vae: AutoencoderKL,
    noise_scheduler: SchedulerMixin,
    batch: dict[str, torch.Tensor],
    image_encoder: torch.nn.Module | None = None,
    reference_dropout: float = 0.0,
    prediction_type: str | None = None,
    generator: torch.Generator | None = None,
    motion_start_probability: float = 0.0,
    task: str = "depth_to_image",
) -> JointLoss:
    """Eq. 5 over all frames of a batch of clips (paper Sec. 5.1, 5.5; supplementary 7.1-7.2).

    ``batch`` (a collated :class:`~jointportrait.data.datasets.ClipDataset` batch): ``image`` (B, F, 3, H, W),
    ``depth`` (B, F, 1, H, W), ``motion_image`` (B, n, 3, H, W), the ground-truth frames before the clip, and
    ``reference`` (B, 3, H, W). One timestep per clip, shared by its frames; independent noise per frame and
    domain. Motion frames: the clean RGB latents of ``motion_image``, or, for a clip drawn as the start of a
    video (probability ``motion_start_probability``), the reference latent repeated ``n`` times, as at
    inference. An 18-channel denoiser gets the masks of ``TASKS[task]`` on every frame (depth-to-image: the
    driving depth is known); an 8-channel one learns joint generation, which latent replacement steers at
    inference. ``model`` is a :class:`VideoJointDenoiser`, possibly wrapped by DDP.
    """
    video = unwrap(model, VideoJointDenoiser)
    unet = video.unet
    param = next(unet.parameters())
    batch_size, num_frames = batch["image"].shape[:2]
    flat = {k: v.flatten(0, 1) for k, v in batch.items() if k in FRAME_KEYS}  # (B*F, ...)
    flat["reference"] = batch["reference"]
    if "reference_latents" in batch:
        flat["reference_latents"] = batch["reference_latents"]
    z = encode_batch(vae, image_encoder, flat, param, unet.config.cross_attention_dim, reference_dropout, generator)

    with torch.no_grad():
        motion_images = batch["motion_image"]  # (B, n, 3, H, W)
        n = motion_images.shape[1]
        motion_latents = encode_rgb(vae, motion_images.flatten(0, 1)).to(param.device, param.dtype)  # (B*n, 4, h, w)
        rng_device = generator.device if generator is not None else param.device
        starts = (torch.rand(batch_size, generator=generator, device=rng_device) < motion_start_probability)
        starts = starts.to(param.device).repeat_interleave(n)  # (B*n,)
        repeated = z.reference.repeat_interleave(n, dim=0)  # (B*n, 4, h, w)
        motion_latents = torch.where(starts[:, None, None, None], repeated, motion_latents)
        condition = None
        if video.is_inpainting:
            like = flat["image"][:, :1].to(param.device)
            rgb_mask, depth_mask = TASKS[task].masks(like=torch.zeros_like(like, dtype=torch.float32))
            condition = build_inpainting_condition(vae, flat["image"], flat["depth"], rgb_mask, depth_mask,
                                                   rgb_latents=z.image, depth_latents=z.depth)
    motion = video.encode_motion_frames(motion_latents, z.encoder_hidden_states, n)

    z0 = torch.cat([z.image, z.depth], dim=1)  # (B*F, 8, h, w)
    noisy, t, target = noised_latents_and_target(z0, noise_scheduler, prediction_type, generator,
                                                 rows_per_timestep=num_frames)  # t: (B,)
    pred = model(
        denoiser_input(noisy, condition),
        t,
        encoder_hidden_states=z.encoder_hidden_states,  # (B, 1, D)
        num_frames=num_frames,
        reference_latents=z.reference,
        reference_keep=z.keep,
        motion=motion,
    )  # (B*F, 8, h, w)
    return split_loss(pred, target, video.latent_channels)


def unconditional_diffusion_loss(
    model: torch.nn.Module,
    vae: AutoencoderKL,
    noise_scheduler: SchedulerMixin,
    batch: dict[str, torch.Tensor],
    image_encoder: torch.nn.Module | None = None,
    reference_dropout: float = 0.0,
    prediction_type: str | None = None,
    generator: torch.Generator | None = None,
) -> JointLoss:
    """The pretraining loss of the base model (the SD 1.5 stand-in, Sec. 3.3): the plain latent diffusion
    MSE on RGB latents only, with the null cross-attention embedding (no text or image condition).

    ``model`` is the 4-channel ``UNet2DConditionModel`` (possibly DDP-wrapped); ``batch`` needs ``image``
    (B, 3, H, W) in [-1, 1] (or its cached ``image_latents``). ``loss_depth`` is reported as 0.
    """
    unet = getattr(model, "module", model)
    param = next(unet.parameters())
    with torch.no_grad():
        z0 = batch_latents(vae, batch, "image").to(param.device, param.dtype)  # (B, 4, h, w)
    noisy, t, target = noised_latents_and_target(z0, noise_scheduler, prediction_type, generator)
    ehs = null_embedding(z0.shape[0], unet.config.cross_attention_dim, param.device, param.dtype)  # (B, 1, D)
    pred = model(noisy, t, encoder_hidden_states=ehs).sample  # (B, 4, h, w)
    loss = F.mse_loss(pred.float(), target.float())
    return JointLoss(loss, loss.detach(), loss.detach().new_zeros(()))
