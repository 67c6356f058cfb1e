"""A UNet2DConditionModel's forward, layer by layer, with a call-out where the motion modules sit
(paper Fig. 2: a temporal module after every spatial layer of the denoiser; supplementary 7.1).

diffusers' motion blocks call their temporal module with the hidden states and
the frame count only, so motion frames cannot reach temporal attention through
them, and state left on modules before the call breaks when gradient
checkpointing recomputes a block. :func:`walk_unet` therefore composes the 2-D
UNet's own resnets, attentions, down- and upsamplers in the order of
``UNet2DConditionModel.forward`` and calls ``at_motion(name, hidden)`` at every
place a temporal module belongs; what that call needs (motion features, frame
count) travels in its closure, explicitly, per call. Without a call-out the walk
computes exactly what ``unet(...)`` computes (the same operations in the same
order), which is what makes a video model with zero motion output equal to the
image model bit for bit.

Gradient checkpointing (``checkpointing=True``) recomputes each resnet and each
call-out in backward (non-reentrant ``torch.utils.checkpoint``, so the closure's
inputs are recomputed with it); attentions checkpoint themselves when the UNet's
own gradient checkpointing is on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.unets.unet_2d_blocks import (
    CrossAttnDownBlock2D,
    CrossAttnUpBlock2D,
    DownBlock2D,
    UNetMidBlock2DCrossAttn,
    UpBlock2D,
)
from torch.utils.checkpoint import checkpoint

WALKABLE_BLOCKS = (CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D, UpBlock2D)
MotionCallout = Callable[[str, torch.Tensor], torch.Tensor]


def check_walkable(unet: UNet2DConditionModel) -> None:
    """Raise ``ValueError`` for UNet features the walk does not reproduce (class or added embeddings,
    encoder projections, centred inputs)."""
    cfg = unet.config
    unsupported = [name for name, on in (
        ("class_embed_type", cfg.class_embed_type is not None),
        ("num_class_embeds", cfg.num_class_embeds is not None),
        ("addition_embed_type", cfg.addition_embed_type is not None),
        ("encoder_hid_dim", cfg.encoder_hid_dim is not None),
        ("center_input_sample", bool(cfg.center_input_sample)),
        ("time_cond_proj_dim", cfg.time_cond_proj_dim is not None),
    ) if on]
    blocks = [*unet.down_blocks, *unet.up_blocks] + ([unet.mid_block] if unet.mid_block is not None else [])
    unsupported += sorted({type(b).__name__ for b in blocks if not isinstance(b, WALKABLE_BLOCKS)})
    if unsupported:
        raise ValueError(f"the video model supports SD-style UNets only; this one has {', '.join(unsupported)}")


def _run(fn: Callable[..., torch.Tensor], *args: Any, checkpointing: bool) -> torch.Tensor:
    if checkpointing and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _attend(attn: torch.nn.Module, hidden: torch.Tensor, encoder_hidden_states: torch.Tensor,
            cross_attention_kwargs: dict | None) -> torch.Tensor:
    return attn(hidden, encoder_hidden_states=encoder_hidden_states, cross_attention_kwargs=cross_attention_kwargs,
                return_dict=False)[0]


def walk_unet(
    unet: UNet2DConditionModel,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    cross_attention_kwargs: dict | None = None,
    at_motion: MotionCallout | None = None,
    checkpointing: bool = False,
    head: bool = True,
) -> torch.Tensor | None:
    """``unet(sample, timestep, encoder_hidden_states)`` with ``at_motion(name, hidden) -> hidden`` after every
    spatial layer (names as the ``MotionAdapter``'s modules: ``down_blocks.i.motion_modules.j``, ...).

    ``sample`` ``(N, C, h, w)``; ``timestep`` scalar or ``(N,)``; ``encoder_hidden_states`` ``(N, L, D)``.
    ``head=False`` stops after the last up block (returns None): enough to collect hidden states.
    """
    callout = at_motion if at_motion is not None else (lambda name, h: h)
    up_factor = 2 ** unet.num_upsamplers
    forward_upsample_size = any(dim % up_factor for dim in sample.shape[-2:])

    emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)  # (N, E)
    if unet.time_embed_act is not None:
        emb = unet.time_embed_act(emb)
    hidden = unet.conv_in(sample)  # (N, C0, h, w)

    def motion(name: str, h: torch.Tensor) -> torch.Tensor:
        return _run(callout, name, h, checkpointing=checkpointing)

    # down blocks: resnet (+ attention), temporal module; the outputs feed the skip connections
    skips = (hidden,)
    for i, block in enumerate(unet.down_blocks):
        attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
        for j, (resnet, attn) in enumerate(zip(block.resnets, attentions)):
            hidden = _run(resnet, hidden, emb, checkpointing=checkpointing)
            if attn is not None:
                hidden = _attend(attn, hidden, encoder_hidden_states, cross_attention_kwargs)
            hidden = motion(f"down_blocks.{i}.motion_modules.{j}", hidden)
            skips += (hidden,)
        if block.downsamplers is not None:
            for downsampler in block.downsamplers:
                hidden = downsampler(hidden)
            skips += (hidden,)

    # mid block: resnet, then (attention, temporal module, resnet) per layer
    mid = unet.mid_block
    if mid is not None:
        hidden = _run(mid.resnets[0], hidden, emb, checkpointing=checkpointing)
        for j, (attn, resnet) in enumerate(zip(mid.attentions, mid.resnets[1:])):
            hidden = _attend(attn, hidden, encoder_hidden_states, cross_attention_kwargs)
            hidden = motion(f"mid_block.motion_modules.{j}", hidden)
            hidden = _run(resnet, hidden, emb, checkpointing=checkpointing)

    # up blocks: skip concatenation, resnet (+ attention), temporal module; upsampler
    for i, block in enumerate(unet.up_blocks):
        n = len(block.resnets)
        res, skips = skips[-n:], skips[:-n]
        upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(unet.up_blocks) - 1 else None
        attentions = getattr(block, "attentions", None) or [None] * n
        for j, (resnet, attn) in enumerate(zip(block.resnets, attentions)):
            hidden = torch.cat([hidden, res[-1 - j]], dim=1)
            hidden = _run(resnet, hidden, emb, checkpointing=checkpointing)
            if attn is not None:
                hidden = _attend(attn, hidden, encoder_hidden_states, cross_attention_kwargs)
            hidden = motion(f"up_blocks.{i}.motion_modules.{j}", hidden)
        if block.upsamplers is not None:
            for upsampler in block.upsamplers:
                hidden = upsampler(hidden, upsample_size)

    if not head:
        return None
    if unet.conv_norm_out is not None:
        hidden = unet.conv_act(unet.conv_norm_out(hidden))
    return unet.conv_out(hidden)  # (N, C_out, h, w)
