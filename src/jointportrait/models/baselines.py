"""The paper's baselines and ablations as models (Sec. 5.2 "Benefit of Joint Learning", Sec. 9 "Ablation Studies").

* "w/o joint learning" (Sec. 5.2, Tables 1-2): two *separate* conditional
  networks, image -> depth and depth -> image. Each is the SD UNet widened to
  8 input channels ``[noisy target latent (4), condition latent (4)]`` and 4
  output channels (the target's noise), the condition latent concatenated to
  the input as in SD's inpainting/depth-conditioned models. Decision: both keep
  the ReferenceNet (same reference attention as the joint model). The paper's
  claim is about *joint* learning; keeping the identity path identical makes
  the joint/separate comparison differ in that one respect only, and a
  depth -> image network without the reference could not recover the subject's
  appearance that Table 2 measures against.
* "w/o ReferenceNet" (Sec. 9, Fig. 9): the joint 8-channel denoiser with the
  reference latent concatenated to its input instead,
  ``[z_rgb(4), z_depth(4), z_ref(4)]`` = 12 channels -> ``[eps_rgb, eps_depth]``;
  no ReferenceNet. The CLIP image embedding (if any) stays, as in the full model.

Widening follows :func:`~jointportrait.models.widen.widen_unet`: new input
channels start at zero, so every baseline starts as the pretrained SD UNet on
its first four channels. Losses have the signature of
:func:`~jointportrait.objective.joint_diffusion_loss` and are looked up by name
in :data:`BASELINES` (``BASELINES[kind].loss``); the sampling functions serve evaluation (depth
estimation, depth-to-image, joint generation).
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.schedulers import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.errors import InputError, MissingPathError
from jointportrait.latent_codec import decode_depth, decode_rgb, encode_depth, encode_rgb
from jointportrait.models.image_condition import null_embedding, reference_conditioning
from jointportrait.models.reference_attention import (
    ReferenceBank,
    install_reference_attention,
    run_reference_net,
)
from jointportrait.models.widen import widen_unet
from jointportrait.objective import JointLoss, encode_batch, noised_latents_and_target, split_loss, unwrap

LATENT = 4
IMAGE_TO_DEPTH = "image_to_depth"
DEPTH_TO_IMAGE = "depth_to_image"
CONCAT_REFERENCE = "concat_reference"
BASELINE_KINDS = (IMAGE_TO_DEPTH, DEPTH_TO_IMAGE, CONCAT_REFERENCE)
BASELINE_FILE = "baseline.json"


class ConditionalDenoiser(torch.nn.Module):
    """"w/o joint learning": ``[noisy target, condition]`` (B, 8, h, w) -> target noise (B, 4, h, w).

    ``direction`` is ``"image_to_depth"`` (target depth, condition RGB) or
    ``"depth_to_image"`` (target RGB, condition depth). The ReferenceNet is
    wired exactly as in :class:`~jointportrait.models.JointDenoiser`.
    """

    def __init__(self, unet: UNet2DConditionModel, reference_unet: UNet2DConditionModel, direction: str) -> None:
        super().__init__()
        if direction not in (IMAGE_TO_DEPTH, DEPTH_TO_IMAGE):
            raise ValueError(f"direction must be {IMAGE_TO_DEPTH!r} or {DEPTH_TO_IMAGE!r}, got {direction!r}")
        c = reference_unet.config.in_channels
        if unet.config.in_channels != 2 * c or unet.config.out_channels != c:
            raise ValueError(f"a conditional denoiser maps {2 * c} -> {c} channels, got "
                             f"{unet.config.in_channels} -> {unet.config.out_channels}")
        self.direction = direction
        self.unet = unet
        self.reference_unet = reference_unet
        install_reference_attention(reference_unet, unet)

    def encode_reference(self, reference_latents: torch.Tensor, encoder_hidden_states: torch.Tensor,
                         keep: torch.Tensor | None = None) -> ReferenceBank:
        """Run the ReferenceNet once at t = 0 and collect its self-attention inputs."""
        return run_reference_net(self.reference_unet, reference_latents, encoder_hidden_states, keep)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                reference_latents: torch.Tensor | None = None, reference_keep: torch.Tensor | None = None,
                reference_bank: ReferenceBank | None = None) -> torch.Tensor:
        if reference_bank is None:
            if reference_latents is None:
                raise ValueError("pass reference_latents or reference_bank")
            reference_bank = self.encode_reference(reference_latents, encoder_hidden_states, reference_keep)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         cross_attention_kwargs={"reference_bank": reference_bank}, return_dict=False)[0]


class ConcatReferenceDenoiser(torch.nn.Module):
    """"w/o ReferenceNet": ``[z_rgb, z_depth]`` (B, 8, h, w) + reference latent (B, 4, h, w) -> (B, 8, h, w)."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        if unet.config.in_channels != 3 * LATENT or unet.config.out_channels != 2 * LATENT:
            raise ValueError(f"the concat-reference denoiser maps {3 * LATENT} -> {2 * LATENT} channels, got "
                             f"{unet.config.in_channels} -> {unet.config.out_channels}")
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                reference_latents: torch.Tensor, reference_keep: torch.Tensor | None = None) -> torch.Tensor:
        ref = reference_latents.to(sample.dtype)
        if reference_keep is not None:
            ref = ref * reference_keep.view(-1, 1, 1, 1).to(ref.dtype)  # dropped reference = zero latent
        x = torch.cat([sample, ref], dim=1)  # (B, 12, h, w)
        return self.unet(x, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


# ---------------------------------------------------------------------------------------------- building
def baseline_components_from_base(base: dict, kind: str) -> dict:
    """Components of a baseline from base SD components (``loading.load_base_components`` or
    ``loading.tiny_base_components``): ``kind``, ``unet``, ``reference_unet`` (None without ReferenceNet),
    ``vae``, ``scheduler``, ``image_encoder``."""
    if kind not in BASELINE_KINDS:
        raise ValueError(f"kind must be one of {BASELINE_KINDS}, got {kind!r}")
    unet = base["unet"]
    if unet.config.in_channels != LATENT or unet.config.out_channels != LATENT:
        raise InputError(f"base UNet has {unet.config.in_channels}/{unet.config.out_channels} channels; "
                         "expected an SD-style 4/4 UNet")
    if kind == CONCAT_REFERENCE:
        denoiser, reference_unet = widen_unet(unet, 3 * LATENT, 2 * LATENT), None
    else:
        denoiser, reference_unet = widen_unet(unet, 2 * LATENT, LATENT), copy.deepcopy(unet)
    return {"kind": kind, "unet": denoiser, "reference_unet": reference_unet, "vae": base["vae"],
            "scheduler": base["scheduler"], "image_encoder": base.get("image_encoder")}


def build_baseline_model(components: dict) -> torch.nn.Module:
    """The trainable module of a baseline (what the trainer optimises and wraps with accelerate)."""
    kind = components["kind"]
    if kind == CONCAT_REFERENCE:
        return ConcatReferenceDenoiser(components["unet"])
    return ConditionalDenoiser(components["unet"], components["reference_unet"], kind)


def save_baseline(components: dict, out: str | Path) -> Path:
    """Write ``baseline.json`` (the kind), ``unet/``, ``reference_unet/`` (if any), ``vae/``, ``scheduler/``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("unet", "reference_unet", "vae"):
        if components.get(name) is not None:
            components[name].save_pretrained(out / name, safe_serialization=True)
    components["scheduler"].save_pretrained(out / "scheduler")
    (out / BASELINE_FILE).write_text(json.dumps({"kind": components["kind"]}) + "\n")
    return out


def load_baseline(path: str | Path) -> dict:
    """Components saved by :func:`save_baseline` (no image encoder: the null embedding is used)."""
    path = Path(path)
    if not (path / BASELINE_FILE).is_file():
        raise MissingPathError(f"{path}: no {BASELINE_FILE}; expected a baseline folder written by save_baseline")
    kind = json.loads((path / BASELINE_FILE).read_text()).get("kind")
    if kind not in BASELINE_KINDS:
        raise InputError(f"{path / BASELINE_FILE}: unknown kind {kind!r}; expected one of {BASELINE_KINDS}")
    reference_unet = None
    if kind != CONCAT_REFERENCE:
        reference_unet = UNet2DConditionModel.from_pretrained(path / "reference_unet", local_files_only=True)
    return {"kind": kind,
            "unet": UNet2DConditionModel.from_pretrained(path / "unet", local_files_only=True),
            "reference_unet": reference_unet,
            "vae": AutoencoderKL.from_pretrained(path / "vae", local_files_only=True),
            "scheduler": DDIMScheduler.from_pretrained(path / "scheduler", local_files_only=True),
            "image_encoder": None}


# ------------------------------------------------------------------------------------------------- losses
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
    """Loss of a "w/o joint learning" network: MSE on the target domain's noise only.

    Same ``batch`` as :func:`~jointportrait.objective.joint_diffusion_loss`
    (``image``, ``depth``, ``reference``). The half the network does not
    predict is reported as 0 (``loss_rgb`` for image -> depth, ``loss_depth``
    for depth -> image).
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
    """Eq. 5 for the "w/o ReferenceNet" ablation: joint noise MSE, reference latent as extra input channels."""
    unet = unwrap(model, ConcatReferenceDenoiser).unet
    z = encode_batch(vae, image_encoder, batch, next(unet.parameters()), unet.config.cross_attention_dim,
                     reference_dropout, generator)
    z0 = torch.cat([z.image, z.depth], dim=1)  # (B, 8, h, w)
    noisy, t, target = noised_latents_and_target(z0, noise_scheduler, prediction_type, generator)
    pred = model(noisy, t, encoder_hidden_states=z.encoder_hidden_states, reference_latents=z.reference,
                 reference_keep=z.keep)  # (B, 8, h, w)
    return split_loss(pred, target, LATENT)


# ----------------------------------------------------------------------------------------------- sampling
def _denoise(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scheduler: SchedulerMixin,
             shape: tuple[int, ...], num_inference_steps: int, generator: torch.Generator | None,
             device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The scheduler's reverse loop from Gaussian noise; ``predict(latents, t)`` returns the model output."""
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    scheduler.set_timesteps(num_inference_steps, device=device)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype) * scheduler.init_noise_sigma
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        pred = predict(scheduler.scale_model_input(latents, t), t)
        latents = scheduler.step(pred, t, latents, **step_kwargs, return_dict=False)[0]
    return latents


def _guided(raw: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance on the reference: ``uncond + s (cond - uncond)`` for a ``[uncond; cond]`` batch."""
    uncond, cond = raw.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


@torch.no_grad()
def sample_conditional(
    model: ConditionalDenoiser,
    vae: AutoencoderKL,
    scheduler: SchedulerMixin,
    condition: torch.Tensor,
    reference: torch.Tensor,
    num_inference_steps: int = 20,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    image_encoder: torch.nn.Module | None = None,
) -> torch.Tensor:
    """Depth estimation or depth-to-image with a "w/o joint learning" network.

    ``condition``: images ``(B, 3, H, W)`` in [-1, 1] (image -> depth) or
    normalised depth ``(B, 1, H, W)`` in [-1, 1] (depth -> image);
    ``reference``: ``(B, 3, H, W)`` in [-1, 1]. Returns relative depth
    ``(B, 1, H, W)`` in [0, 1] (0 = near) or images ``(B, 3, H, W)`` in [0, 1].
    """
    param = next(model.unet.parameters())
    device, dtype = param.device, param.dtype
    if model.direction == IMAGE_TO_DEPTH:
        cond_z = encode_rgb(vae, condition).to(device, dtype)
    else:
        cond_z = encode_depth(vae, condition).to(device, dtype)
    z_ref = encode_rgb(vae, reference).to(device, dtype)
    if cond_z.shape != z_ref.shape:
        raise ValueError(f"condition and reference must have one batch size and image size, got latents "
                         f"{tuple(cond_z.shape)} and {tuple(z_ref.shape)}")
    ehs = reference_conditioning(image_encoder, reference.to(device), model.unet.config.cross_attention_dim, dtype)
    bank = model.encode_reference(z_ref, ehs)
    batch = cond_z.shape[0]
    do_cfg = guidance_scale > 1.0
    if do_cfg:
        rows = torch.arange(batch, device=device).repeat(2)
        keep = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device)
        bank = bank.select(rows, keep=keep)
        ehs = torch.cat([null_embedding(batch, ehs.shape[-1], device, dtype), ehs])
        cond_z = torch.cat([cond_z, cond_z])

    def predict(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = torch.cat([latents] * 2) if do_cfg else latents
        raw = model(torch.cat([x, cond_z], dim=1), t, encoder_hidden_states=ehs, reference_bank=bank)  # (., 4, h, w)
        return _guided(raw, guidance_scale) if do_cfg else raw

    latents = _denoise(predict, scheduler, tuple(z_ref.shape), num_inference_steps, generator, device, dtype)
    if model.direction == IMAGE_TO_DEPTH:
        return decode_depth(vae, latents).float()  # (B, 1, H, W) in [0, 1]
    return (decode_rgb(vae, latents).float() + 1.0) / 2.0  # (B, 3, H, W) in [0, 1]


@torch.no_grad()
def sample_concat_reference(
    model: ConcatReferenceDenoiser,
    vae: AutoencoderKL,
    scheduler: SchedulerMixin,
    reference: torch.Tensor,
    num_inference_steps: int = 20,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    image_encoder: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint generation with the "w/o ReferenceNet" ablation, one sample per reference ``(B, 3, H, W)`` in [-1, 1].

    Returns images ``(B, 3, H, W)`` in [0, 1] and relative depth ``(B, 1, H, W)`` in [0, 1]
    (repeat the references for several samples each).
    """
    param = next(model.unet.parameters())
    device, dtype = param.device, param.dtype
    z_ref = encode_rgb(vae, reference).to(device, dtype)  # (B, 4, h, w)
    ehs = reference_conditioning(image_encoder, reference.to(device), model.unet.config.cross_attention_dim, dtype)
    batch = z_ref.shape[0]
    do_cfg = guidance_scale > 1.0
    keep = None
    if do_cfg:
        keep = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device)
        ehs = torch.cat([null_embedding(batch, ehs.shape[-1], device, dtype), ehs])
        z_ref = torch.cat([z_ref, z_ref])

    def predict(latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = torch.cat([latents] * 2) if do_cfg else latents
        raw = model(x, t, encoder_hidden_states=ehs, reference_latents=z_ref, reference_keep=keep)  # (., 8, h, w)
        return _guided(raw, guidance_scale) if do_cfg else raw

    shape = (batch, 2 * LATENT, *z_ref.shape[-2:])
    latents = _denoise(predict, scheduler, shape, num_inference_steps, generator, device, dtype)
    images = (decode_rgb(vae, latents[:, :LATENT]).float() + 1.0) / 2.0  # (B, 3, H, W)
    return images, decode_depth(vae, latents[:, LATENT:]).float()  # (B, 1, H, W)


@dataclass(frozen=True)
class BaselineSpec:
    """One baseline/ablation: the paper's name, whether it has a ReferenceNet, its loss and sampler."""

    paper_name: str
    uses_reference_net: bool
    loss: Callable[..., JointLoss]
    sample: Callable


# kind -> spec. A training config names a kind; the trainer calls ``BASELINES[kind].loss`` like
# objective.joint_diffusion_loss, evaluation calls ``sample``.
BASELINES: dict[str, BaselineSpec] = {
    IMAGE_TO_DEPTH: BaselineSpec("w/o Joint Learning (image -> depth)", True, conditional_diffusion_loss,
                                 sample_conditional),
    DEPTH_TO_IMAGE: BaselineSpec("w/o Joint Learning (depth -> image)", True, conditional_diffusion_loss,
                                 sample_conditional),
    CONCAT_REFERENCE: BaselineSpec("w/o ReferenceNet", False, concat_reference_loss, sample_concat_reference),
}
