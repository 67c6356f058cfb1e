"""Temporal attention: the motion modules of the video model (paper Sec. 4 last paragraph, Fig. 2;
supplementary 7.1).

The weights live in a diffusers :class:`~diffusers.MotionAdapter` (the AnimateDiff
layout: ``down_blocks.i.motion_modules.j``, ``mid_block.motion_modules.0``,
``up_blocks.i.motion_modules.j``, each an ``AnimateDiffTransformer3D`` with
``norm``, ``proj_in``, one ``BasicTransformerBlock`` of two self-attentions over
frames with sinusoidal positions and a feed-forward, and ``proj_out``), so a
``MotionAdapter`` folder or an AnimateDiff checkpoint loads one-to-one. One
module sits after every spatial layer of the denoiser (after each resnet/attention
pair of a down or up block, after the mid block's attention), as in diffusers'
``UNetMotionModel``.

The forward is :func:`temporal_attention`, not diffusers' own, for two reasons:

- GroupNorm normalises each frame on its own, as the original AnimateDiff does
  (diffusers pools the statistics over all frames, so other frames, and motion
  frames, would change a frame's normalisation).
- Motion frames (Sec. 7.1): the features of the previous clip's last ``n``
  frames at this module's position (from the ReferenceNet) are prepended along
  time as keys and values of each temporal attention layer; queries are the
  current frames only, so the motion frames are read and dropped, never
  updated. Positions run over ``[motion frames, current frames]``.

With ``proj_out`` zero (:func:`zero_motion_output`, AnimateDiff's initialisation)
every module is the identity, so the video model computes exactly what the
image model computes, frame by frame.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from diffusers import MotionAdapter, UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

from jointportrait.errors import InputError

MOTION_HEADS = 8  # AnimateDiff's temporal attention heads
MAX_FRAMES = 32  # AnimateDiff v2/v3 position table: motion frames + clip frames must fit


class MotionAdapterMismatchError(InputError):
    """A motion adapter whose modules do not fit the denoiser's blocks."""


def motion_adapter_config(unet: UNet2DConditionModel, max_seq_length: int = MAX_FRAMES,
                          num_attention_heads: int = MOTION_HEADS, use_mid_block: bool = True) -> dict:
    """The ``MotionAdapter`` config whose modules fit ``unet``'s blocks (channels, modules per block)."""
    cfg = unet.config
    return dict(
        block_out_channels=tuple(cfg.block_out_channels),
        motion_layers_per_block=cfg.layers_per_block,
        motion_mid_block_layers_per_block=1,
        motion_num_attention_heads=num_attention_heads,
        motion_norm_num_groups=cfg.norm_num_groups,
        motion_max_seq_length=max_seq_length,
        use_motion_mid_block=use_mid_block,
    )


def build_motion_adapter(unet: UNet2DConditionModel, seed: int = 0, zero_output: bool = True,
                         max_seq_length: int = MAX_FRAMES) -> MotionAdapter:
    """A new ``MotionAdapter`` for ``unet``: diffusers' initialisation from ``seed`` (the global RNG is left
    as it was), with ``proj_out`` zero when ``zero_output`` (the video model then starts as the image model)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MotionAdapter(**motion_adapter_config(unet, max_seq_length=max_seq_length))
    if zero_output:
        zero_motion_output(adapter)
    return adapter


def motion_modules(adapter: MotionAdapter) -> Iterator[tuple[str, AnimateDiffTransformer3D]]:
    """``(name, module)`` of every temporal module, in the order the denoiser meets them."""
    for i, block in enumerate(adapter.down_blocks):
        for j, module in enumerate(block.motion_modules):
            yield f"down_blocks.{i}.motion_modules.{j}", module
    if adapter.mid_block is not None:
        for j, module in enumerate(adapter.mid_block.motion_modules):
            yield f"mid_block.motion_modules.{j}", module
    for i, block in enumerate(adapter.up_blocks):
        for j, module in enumerate(block.motion_modules):
            yield f"up_blocks.{i}.motion_modules.{j}", module


@torch.no_grad()
def zero_motion_output(adapter: MotionAdapter) -> None:
    """Zero every module's ``proj_out`` (weight and bias): each module becomes the identity."""
    for _, module in motion_modules(adapter):
        module.proj_out.weight.zero_()
        module.proj_out.bias.zero_()


def motion_positions(unet: UNet2DConditionModel, with_mid_block: bool = True) -> dict[str, int]:
    """Module name -> channels of every place of ``unet`` where a temporal module belongs (the output of each
    resnet (+ attention) of a down or up block, and of each mid-block attention)."""
    places = {}
    for i, block in enumerate(unet.down_blocks):
        for j, resnet in enumerate(block.resnets):
            places[f"down_blocks.{i}.motion_modules.{j}"] = resnet.out_channels
    if with_mid_block and unet.mid_block is not None:
        for j, _ in enumerate(unet.mid_block.attentions):
            places[f"mid_block.motion_modules.{j}"] = unet.mid_block.resnets[j + 1].out_channels
    for i, block in enumerate(unet.up_blocks):
        for j, resnet in enumerate(block.resnets):
            places[f"up_blocks.{i}.motion_modules.{j}"] = resnet.out_channels
    return places


def check_adapter_fits(adapter: MotionAdapter, unet: UNet2DConditionModel) -> None:
    """Raise :class:`MotionAdapterMismatchError` unless ``adapter`` has one module of the right width at
    every place of ``unet`` (a mid-block module is optional, as in AnimateDiff v1)."""
    if adapter.config.get("conv_in_channels"):
        raise MotionAdapterMismatchError("the motion adapter carries a conv_in (a PIA adapter); "
                                         "expected a plain AnimateDiff motion adapter")
    modules = dict(motion_modules(adapter))
    places = motion_positions(unet, with_mid_block=adapter.mid_block is not None)
    if set(modules) != set(places):
        extra, missing = sorted(set(modules) - set(places)), sorted(set(places) - set(modules))
        raise MotionAdapterMismatchError(
            f"the motion adapter has {len(modules)} temporal modules, the denoiser {len(places)} places for them "
            f"(missing {missing[:2]}, extra {extra[:2]}); it was made for another UNet layout")
    for name, channels in places.items():
        if modules[name].in_channels != channels:
            raise MotionAdapterMismatchError(
                f"motion adapter {name} has {modules[name].in_channels} channels, the denoiser's block "
                f"{channels}; it was made for another UNet (e.g. SD 1.5 vs the tiny model)")


# ----------------------------------------------------------------- the forward
def frame_tokens(module: AnimateDiffTransformer3D, hidden: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Per-frame GroupNorm and ``proj_in``: ``(B*F, C, H, W)`` -> one sequence over frames per pixel,
    ``(B*H*W, F, D)``."""
    bf, c, h, w = hidden.shape
    x = module.norm(hidden)  # (B*F, C, H, W): statistics of each frame alone
    x = x.view(bf // num_frames, num_frames, c, h, w).permute(0, 3, 4, 1, 2)  # (B, H, W, F, C)
    return module.proj_in(x.reshape(-1, num_frames, c))  # (B*H*W, F, D)


def _attention(attn: Attention, queries: torch.Tensor, sequence: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
    """Multi-head attention of ``queries`` ``(N, F, D)`` over ``sequence`` ``(N, S, D)`` with the layer's
    projections; ``mask`` ``(N, 1, 1, S)`` bool, True = attend."""
    n, f, _ = queries.shape
    heads = attn.heads
    q = attn.to_q(queries)  # (N, F, D)
    k, v = attn.to_k(sequence), attn.to_v(sequence)  # (N, S, D)
    d = q.shape[-1] // heads
    q = q.view(n, f, heads, d).transpose(1, 2)  # (N, h, F, d)
    k = k.view(n, -1, heads, d).transpose(1, 2)  # (N, h, S, d)
    v = v.view(n, -1, heads, d).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    out = out.transpose(1, 2).reshape(n, f, heads * d)  # (N, F, D)
    return attn.to_out[1](attn.to_out[0](out))


def _temporal_self_attention(attn: Attention, norm: torch.nn.Module, block: BasicTransformerBlock, x: torch.Tensor,
                             motion: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
    """One pre-norm temporal attention layer's update of ``x`` ``(N, F, D)``; ``motion`` ``(N, n, D)`` joins
    the keys and values only."""
    sequence = x if motion is None else torch.cat([motion, x], dim=1)  # (N, n + F, D)
    sequence = norm(sequence)
    if block.pos_embed is not None:
        sequence = block.pos_embed(sequence)  # positions 0..n+F-1: the motion frames come first
    queries = sequence[:, sequence.shape[1] - x.shape[1]:]  # (N, F, D)
    return _attention(attn, queries, sequence, mask)


def _transformer_block(block: BasicTransformerBlock, x: torch.Tensor, motion: torch.Tensor | None,
                       mask: torch.Tensor | None) -> torch.Tensor:
    """diffusers' ``BasicTransformerBlock`` (layer norm, two self-attentions, feed-forward) over frames, with
    the motion frames as extra keys and values of both attention layers."""
    if block.norm_type != "layer_norm" or block.only_cross_attention:
        raise ValueError(f"unsupported temporal transformer block (norm_type={block.norm_type!r})")
    x = x + _temporal_self_attention(block.attn1, block.norm1, block, x, motion, mask)
    if block.attn2 is not None:
        x = x + _temporal_self_attention(block.attn2, block.norm2, block, x, motion, mask)
    return x + block.ff(block.norm3(x))


def temporal_attention(
    module: AnimateDiffTransformer3D,
    hidden: torch.Tensor,
    num_frames: int,
    motion: torch.Tensor | None = None,
    motion_keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """One motion module on ``hidden`` ``(B*F, C, H, W)`` (frames of a clip contiguous): self-attention over
    the ``F`` frames at every pixel, residual.

    ``motion`` ``(B*n, C, H, W)``: the motion frames' features at this module's place (the ReferenceNet's
    hidden states of the previous clip's last ``n`` frames), keys and values only. ``motion_keep`` ``(B, n)``
    bool masks motion frames out of the keys (False = not attended).
    """
    bf, c, h, w = hidden.shape
    if bf % num_frames:
        raise ValueError(f"{bf} rows are not a whole number of {num_frames}-frame clips")
    batch = bf // num_frames
    x = frame_tokens(module, hidden, num_frames)  # (B*H*W, F, D)
    m = mask = None
    if motion is not None:
        n = motion.shape[0] // batch
        if motion.shape[0] != batch * n or motion.shape[1:] != hidden.shape[1:]:
            raise ValueError(f"motion features {tuple(motion.shape)} do not match {batch} clips of "
                             f"{tuple(hidden.shape[1:])}")
        m = frame_tokens(module, motion.to(hidden.dtype), n)  # (B*H*W, n, D)
        if motion_keep is not None:
            keep = torch.cat([motion_keep.to(hidden.device).bool(),
                              torch.ones(batch, num_frames, dtype=torch.bool, device=hidden.device)], 1)
            mask = keep.repeat_interleave(h * w, dim=0)[:, None, None, :]  # (B*H*W, 1, 1, n + F)
    for block in module.transformer_blocks:
        x = _transformer_block(block, x, m, mask)
    x = module.proj_out(x)  # (B*H*W, F, C)
    x = x.view(batch, h, w, num_frames, c).permute(0, 3, 4, 1, 2).reshape(bf, c, h, w)
    return hidden + x
