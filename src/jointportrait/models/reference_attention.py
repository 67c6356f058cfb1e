"""Reference attention through diffusers attention processors (paper Sec. 3.3, "ReferenceNet").

The ReferenceNet mirrors the denoiser. In every self-attention layer (``attn1``)
the ReferenceNet's processor *writes* the layer input (the normalised hidden
states) into a :class:`ReferenceBank`; the denoiser's processor of the layer
with the same module name *reads* it and attends with its own queries over
``[own tokens, reference tokens]`` for keys and values.

The bank travels explicitly through ``cross_attention_kwargs={"reference_bank": bank}``:
no module holds feature state between calls, so a bank is built once per
sampling call (the ReferenceNet runs at t = 0 once) and reused by every step.
Per-sample ``keep`` flags drop the reference for classifier-free guidance and
for reference dropout in training; a dropped sample attends to its own tokens
only, exactly as a plain self-attention layer would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

Role = Literal["write", "read", "plain"]


@dataclass
class ReferenceBank:
    """Reference features of one batch, keyed by the attention module name.

    ``features[name]`` is ``(B, M, C)``; ``keep`` is ``(B,)`` bool or None
    (= keep all). The denoiser batch must match the bank batch row for row:
    use :meth:`select` to repeat or reorder rows (e.g. for several samples per
    reference, or the unconditional half of classifier-free guidance).
    ``kv_cache`` holds the readers' key/value projections of the reference
    tokens during inference (no autograd), so that a bank reused over all
    sampling steps projects them once.
    """

    features: dict[str, torch.Tensor] = field(default_factory=dict)
    keep: torch.Tensor | None = None
    kv_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def batch_size(self) -> int:
        return next(iter(self.features.values())).shape[0] if self.features else 0

    def select(self, index: torch.Tensor, keep: torch.Tensor | None = None) -> ReferenceBank:
        """A bank whose row ``i`` is row ``index[i]`` of this one, with new ``keep`` flags."""
        if keep is None and self.keep is not None:
            keep = self.keep[index]
        return ReferenceBank({k: v[index] for k, v in self.features.items()}, keep)


def _attend(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
            mask: torch.Tensor | None) -> torch.Tensor:
    """Multi-head SDPA on projected ``(B, N, C)`` queries and ``(B, K, C)`` keys/values -> ``(B, N, C)``."""
    batch, heads = query.shape[0], attn.heads
    head_dim = key.shape[-1] // heads
    q = query.view(batch, -1, heads, head_dim).transpose(1, 2)  # (B, h, N, d)
    k = key.view(batch, -1, heads, head_dim).transpose(1, 2)  # (B, h, K, d)
    v = value.view(batch, -1, heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)  # (B, N, C)


class ReferenceAttnProcessor:
    """Scaled-dot-product attention that writes to or reads from a :class:`ReferenceBank`.

    ``role="write"`` (ReferenceNet ``attn1``): stores the input tokens under ``name``.
    ``role="read"`` (denoiser ``attn1``): keys/values over [own, reference] tokens;
    rows whose ``keep`` flag is False attend to their own tokens only (computed
    separately, so no masked attention and no wasted work on dropped rows).
    ``role="plain"``: ordinary attention (cross-attention layers), accepting and
    ignoring the bank so that one ``cross_attention_kwargs`` serves every layer.
    """

    def __init__(self, name: str, role: Role = "plain") -> None:
        if role not in ("write", "read", "plain"):
            raise ValueError(f"role must be 'write', 'read' or 'plain', got {role!r}")
        self.name = name
        self.role = role

    def _reference_kv(self, attn: Attention, bank: ReferenceBank, rows: torch.Tensor | None):
        """Key/value projections of the reference tokens of ``rows`` (all rows if None), cached without grad."""
        cached = bank.kv_cache.get(self.name)
        if cached is not None:
            return cached
        reference = bank.features[self.name]  # (B, M, C)
        if rows is not None:
            reference = reference[rows]
        reference = reference.to(attn.to_k.weight.dtype)
        kv = (attn.to_k(reference), attn.to_v(reference))  # (B', M, C) each
        if not torch.is_grad_enabled():
            bank.kv_cache[self.name] = kv
        return kv

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        reference_bank: ReferenceBank | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)  # (B, N, C)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        batch = hidden_states.shape[0]
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])

        if reference_bank is not None and self.role == "write":
            reference_bank.features[self.name] = hidden_states

        query = attn.to_q(hidden_states)  # (B, N, C)
        key = attn.to_k(context)  # (B, N, C)
        value = attn.to_v(context)

        reading = reference_bank is not None and self.role == "read" and self.name in reference_bank.features
        keep = reference_bank.keep if reading else None
        if reading and reference_bank.features[self.name].shape[0] != batch:
            raise ValueError(
                f"reference bank has batch {reference_bank.features[self.name].shape[0]} but {self.name} sees "
                f"batch {batch}; align it with ReferenceBank.select"
            )
        if reading and keep is not None and not bool(keep.any()):
            reading = False  # every row dropped: plain self-attention

        if not reading:
            out = _attend(attn, query, key, value, attention_mask)
        elif keep is None or bool(keep.all()):
            k_ref, v_ref = self._reference_kv(attn, reference_bank, None)  # (B, M, C)
            mask = None if attention_mask is None else F.pad(attention_mask, (0, k_ref.shape[1]))
            out = _attend(attn, query, torch.cat([key, k_ref], 1), torch.cat([value, v_ref], 1), mask)
        else:
            kept = keep.nonzero().flatten()
            dropped = (~keep).nonzero().flatten()
            k_ref, v_ref = self._reference_kv(attn, reference_bank, kept)  # (B_kept, M, C)
            mask_kept = mask_dropped = None
            if attention_mask is not None:
                mask_kept = F.pad(attention_mask[kept], (0, k_ref.shape[1]))
                mask_dropped = attention_mask[dropped]
            out_kept = _attend(attn, query[kept], torch.cat([key[kept], k_ref], 1),
                               torch.cat([value[kept], v_ref], 1), mask_kept)
            out_dropped = _attend(attn, query[dropped], key[dropped], value[dropped], mask_dropped)
            out = query.new_zeros(query.shape).index_copy(0, kept, out_kept).index_copy(0, dropped, out_dropped)

        out = attn.to_out[1](attn.to_out[0](out))  # (B, N, C)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def self_attention_names(unet: UNet2DConditionModel) -> list[str]:
    """Processor names of the self-attention layers (``...attn1.processor``) of a UNet."""
    return [name for name in unet.attn_processors if name.endswith("attn1.processor")]


def install_reference_attention(reference_unet: UNet2DConditionModel, denoiser: UNet2DConditionModel) -> None:
    """Pair the ReferenceNet's writers with the denoiser's readers by module name.

    Both UNets must share the block layout (the ReferenceNet is initialised from
    the denoiser, Sec. 3.3). Every attention layer of both gets a
    :class:`ReferenceAttnProcessor`; only ``attn1`` layers write or read.
    """
    writers = set(self_attention_names(reference_unet))
    readers = set(self_attention_names(denoiser))
    if writers != readers:
        missing = sorted(readers ^ writers)[:3]
        raise ValueError(
            "ReferenceNet and denoiser have different self-attention layouts "
            f"(first differences: {missing}); build the ReferenceNet from the denoiser's config"
        )
    reference_unet.set_attn_processor(
        {n: ReferenceAttnProcessor(n, "write" if n in writers else "plain") for n in reference_unet.attn_processors}
    )
    denoiser.set_attn_processor(
        {n: ReferenceAttnProcessor(n, "read" if n in readers else "plain") for n in denoiser.attn_processors}
    )
