"""The video denoiser: the joint denoiser with a motion module after every spatial layer and motion frames
(paper Sec. 4 last paragraph, Fig. 2; supplementary 7.1).

:class:`VideoJointDenoiser` is the :class:`~jointportrait.models.JointDenoiser`
(8-channel stage-1 or 18-channel stage-2 ``unet`` and its ReferenceNet) plus a
diffusers ``MotionAdapter``. Its rows are clips of ``F`` frames, frames
contiguous: ``sample`` is ``(B*F, C, h, w)``, one timestep and one reference per
clip. The reference bank and the cross-attention states are given per clip and
aligned to ``B x F`` rows here.

Motion frames (Sec. 7.1): :meth:`VideoJointDenoiser.encode_motion_frames` runs
the ReferenceNet (t = 0) over the clean RGB latents of ``n`` frames per clip and
keeps its hidden states at every temporal module's place
(:class:`MotionFeatures`). The forward passes them explicitly to each temporal
module (:func:`~jointportrait.models.motion.temporal_attention`), where they are
keys and values only; nothing is stored on a module, so gradient checkpointing
recomputes exactly what the forward computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import MotionAdapter, UNet2DConditionModel

from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.motion import check_adapter_fits, motion_modules, temporal_attention
from jointportrait.models.reference_attention import ReferenceBank
from jointportrait.models.unet_walk import check_walkable, walk_unet


@dataclass
class MotionFeatures:
    """The ReferenceNet's hidden states of ``num_frames`` motion frames per clip at every temporal module.

    ``states[name]`` is ``(B*n, C, H, W)`` for the module ``name`` (frames of a clip contiguous); ``keep``
    ``(B, n)`` bool or None (= all) masks motion frames out of the temporal attention's keys.
    """

    states: dict[str, torch.Tensor]
    num_frames: int
    keep: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return next(iter(self.states.values())).shape[0] // self.num_frames if self.states else 0

    def select(self, index: torch.Tensor) -> MotionFeatures:
        """Features whose clip ``i`` is clip ``index[i]`` of these (e.g. the two halves of guidance)."""
        rows = (index[:, None] * self.num_frames + torch.arange(self.num_frames, device=index.device)).flatten()
        keep = None if self.keep is None else self.keep[index]
        return MotionFeatures({k: v[rows.to(v.device)] for k, v in self.states.items()}, self.num_frames, keep)

    def with_keep(self, keep: torch.Tensor | None) -> MotionFeatures:
        """The same features with other ``keep`` flags ``(B, n)``."""
        return MotionFeatures(self.states, self.num_frames, keep)


def bank_for_frames(bank: ReferenceBank, num_frames: int) -> ReferenceBank:
    """A per-clip reference bank ``(B, ...)`` with one row per frame ``(B*F, ...)`` (keep flags repeated)."""
    index = torch.arange(bank.batch_size).repeat_interleave(num_frames)
    device = next(iter(bank.features.values())).device
    keep = None if bank.keep is None else bank.keep.repeat_interleave(num_frames)
    return bank.select(index.to(device), keep=keep)


class VideoJointDenoiser(JointDenoiser):
    """``unet`` + ``reference_unet`` (as :class:`JointDenoiser`) + ``motion_adapter`` (temporal modules).

    Only the adapter is new: the UNets stay plain ``UNet2DConditionModel``s (saved as such), and with zero
    motion output this module computes the image model's prediction for every frame.
    """

    def __init__(self, unet: UNet2DConditionModel, reference_unet: UNet2DConditionModel,
                 motion_adapter: MotionAdapter) -> None:
        super().__init__(unet, reference_unet)
        check_walkable(unet)
        check_adapter_fits(motion_adapter, unet)
        self.motion_adapter = motion_adapter
        self.gradient_checkpointing = False

    @property
    def max_frames(self) -> int:
        """Motion frames + clip frames that the position table covers."""
        return int(self.motion_adapter.config.motion_max_seq_length)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute resnets, attentions and temporal modules in backward (same gradients, less memory)."""
        self.gradient_checkpointing = True
        self.unet.enable_gradient_checkpointing()

    def disable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = False
        self.unet.disable_gradient_checkpointing()

    # ------------------------------------------------------------- motion frames
    def encode_motion_frames(self, latents: torch.Tensor, encoder_hidden_states: torch.Tensor, num_frames: int,
                             keep: torch.Tensor | None = None) -> MotionFeatures:
        """Run the ReferenceNet (t = 0) over motion frames and keep its hidden states at every temporal module.

        ``latents`` ``(B*n, 4, h, w)``: the clean RGB latents of ``n`` frames per clip (the previous clip's
        last frames, or the reference repeated for a first clip); ``encoder_hidden_states`` per clip
        ``(B, L, D)``. Computed without autograd unless a ReferenceNet parameter trains.
        """
        batch = encoder_hidden_states.shape[0]
        if latents.shape[0] != batch * num_frames:
            raise ValueError(f"{latents.shape[0]} motion latents for {batch} clips of {num_frames} motion frames")
        states: dict[str, torch.Tensor] = {}

        def record(name: str, hidden: torch.Tensor) -> torch.Tensor:
            states[name] = hidden  # (B*n, C, H, W)
            return hidden

        ehs = encoder_hidden_states.repeat_interleave(num_frames, dim=0)  # (B*n, L, D)
        t0 = torch.zeros(latents.shape[0], device=latents.device, dtype=torch.long)
        trains = any(p.requires_grad for p in self.reference_unet.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trains):
            walk_unet(self.reference_unet, latents.to(ehs.dtype), t0, ehs, at_motion=record, head=False)
        names = {name for name, _ in motion_modules(self.motion_adapter)}
        return MotionFeatures({k: v for k, v in states.items() if k in names}, num_frames, keep)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        num_frames: int = 1,
        reference_latents: torch.Tensor | None = None,
        reference_keep: torch.Tensor | None = None,
        reference_bank: ReferenceBank | None = None,
        motion: MotionFeatures | None = None,
    ) -> torch.Tensor:
        """The prediction for ``B`` clips of ``num_frames`` frames: ``sample`` ``(B*F, C, h, w)`` -> ``(B*F, 8,
        h, w)``.

        ``timestep``: scalar or ``(B,)`` (one per clip). ``encoder_hidden_states``: ``(B, L, D)`` per clip.
        The reference: ``reference_latents`` ``(B, 4, h, w)`` (the ReferenceNet runs now, as in training) or
        a ``reference_bank`` of ``B`` or ``B*F`` rows. ``motion``: motion frames of the ``B`` clips, or None
        (temporal attention over the clip's frames only).
        """
        bf = sample.shape[0]
        batch = encoder_hidden_states.shape[0]
        if bf != batch * num_frames:
            raise ValueError(f"{bf} sample rows are not {batch} clips of {num_frames} frames")
        n = motion.num_frames if motion is not None else 0
        if num_frames + n > self.max_frames:
            raise ValueError(f"{n} motion + {num_frames} clip frames exceed the motion modules' "
                             f"{self.max_frames} positions")
        if motion is not None and motion.batch_size != batch:
            raise ValueError(f"motion features for {motion.batch_size} clips, sample has {batch}")
        if reference_bank is None:
            if reference_latents is None:
                raise ValueError("pass reference_latents or reference_bank")
            reference_bank = self.encode_reference(reference_latents, encoder_hidden_states, reference_keep)
        if reference_bank.batch_size == batch and num_frames > 1:
            reference_bank = bank_for_frames(reference_bank, num_frames)
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim == 1 and timestep.shape[0] == batch:
            timestep = timestep.repeat_interleave(num_frames)  # (B*F,): one timestep per clip
        modules = dict(motion_modules(self.motion_adapter))

        def temporal(name: str, hidden: torch.Tensor) -> torch.Tensor:
            if name not in modules:  # e.g. the mid block of an adapter without one (AnimateDiff v1)
                return hidden
            states = motion.states[name] if motion is not None else None
            keep = motion.keep if motion is not None else None
            return temporal_attention(modules[name], hidden, num_frames, states, keep)

        pred = walk_unet(
            self.unet, sample, timestep,
            encoder_hidden_states.repeat_interleave(num_frames, dim=0),  # (B*F, L, D)
            cross_attention_kwargs={"reference_bank": reference_bank},
            at_motion=temporal,
            checkpointing=self.gradient_checkpointing,
        )  # (B*F, 8, h, w)
        if torch.is_grad_enabled() and reference_bank.all_dropped:
            pred = pred + reference_bank.zero_touch().to(pred.dtype)
        return pred
