"""Reference attention through diffusers attention processors (paper Sec. 3.3, "ReferenceNet").

The ReferenceNet mirrors the denoiser. In every *spatial self-attention* layer
(the ``attn1`` of a ``Transformer2DModel`` block) the ReferenceNet's
:class:`ReferenceWriterProcessor` stores the layer input (the normalised hidden
states) in a :class:`ReferenceBank`; the denoiser's
:class:`ReferenceReaderProcessor` of the layer with the same module name attends
with its own queries over ``[own tokens, reference tokens]`` for keys and
values. Every other attention layer (cross-attention, and the temporal
attention of a motion module) gets a :class:`BankAwareAttnProcessor`: ordinary
attention that accepts and ignores the bank, so one ``cross_attention_kwargs``
serves every layer.

The bank travels explicitly through ``cross_attention_kwargs={"reference_bank": bank}``:
no module holds feature state between calls, so a bank is built once per
sampling call (the ReferenceNet runs at t = 0 once) and reused by every step.
Per-sample ``keep`` flags drop the reference for classifier-free guidance and
for reference dropout in training; a dropped sample attends to its own tokens
only, exactly as a plain self-attention layer would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.transformer_2d import Transformer2DModel


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

    @property
    def all_dropped(self) -> bool:
        """True when every row dropped its reference (the readers then attend to their own tokens only)."""
        return self.keep is not None and not bool(self.keep.any())

    def select(self, index: torch.Tensor, keep: torch.Tensor | None = None) -> ReferenceBank:
        """A bank whose row ``i`` is row ``index[i]`` of this one, with new ``keep`` flags."""
        if keep is None and self.keep is not None:
            keep = self.keep[index]
        return ReferenceBank({k: v[index] for k, v in self.features.items()}, keep)

    def zero_touch(self) -> torch.Tensor:
        """``0 * sum(features)``: a zero that keeps the ReferenceNet in the autograd graph.

        Data-parallel training (DDP) needs every process to use the same parameters; a
        micro-batch whose rows all dropped their reference reads no feature, so the
        training forward adds this zero to its output (see
        :meth:`~jointportrait.models.reference_denoiser.ReferenceNetDenoiser.forward`).
        """
        return 0.0 * torch.stack([f.float().sum() for f in self.features.values()]).sum()


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


class BankAwareAttnProcessor:
    """Ordinary scaled-dot-product attention (as diffusers' ``AttnProcessor2_0``) that accepts a
    ``reference_bank`` keyword and ignores it. Subclasses change only :meth:`attend`.
    """

    def attend(self, attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               inputs: torch.Tensor, mask: torch.Tensor | None, bank: ReferenceBank | None) -> torch.Tensor:
        """Attention output ``(B, N, C)`` before the output projection; ``inputs`` are the normalised tokens."""
        return _attend(attn, query, key, value, mask)

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

        query = attn.to_q(hidden_states)  # (B, N, C)
        key = attn.to_k(context)  # (B, N, C)
        value = attn.to_v(context)
        out = self.attend(attn, query, key, value, hidden_states, attention_mask, reference_bank)

        out = attn.to_out[1](attn.to_out[0](out))  # (B, N, C)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class ReferenceWriterProcessor(BankAwareAttnProcessor):
    """ReferenceNet side: ordinary self-attention that also stores its input tokens in the bank as ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def attend(self, attn, query, key, value, inputs, mask, bank):
        if bank is not None:
            bank.features[self.name] = inputs  # (B, M, C)
        return _attend(attn, query, key, value, mask)


class ReferenceReaderProcessor(BankAwareAttnProcessor):
    """Denoiser side: keys/values over ``[own, reference]`` tokens, queries over its own tokens.

    Rows whose ``keep`` flag is False attend to their own tokens only (computed
    apart: no masked attention and no wasted work on dropped rows). Without a bank,
    or without this layer in it, it is plain self-attention.
    """

    def __init__(self, name: str) -> None:
        self.name = name

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

    def attend(self, attn, query, key, value, inputs, mask, bank):
        if bank is None or self.name not in bank.features or bank.all_dropped:
            return _attend(attn, query, key, value, mask)
        batch = query.shape[0]
        if bank.features[self.name].shape[0] != batch:
            raise ValueError(
                f"reference bank has batch {bank.features[self.name].shape[0]} but {self.name} sees "
                f"batch {batch}; align it with ReferenceBank.select"
            )
        keep = bank.keep
        if keep is None or bool(keep.all()):
            k_ref, v_ref = self._reference_kv(attn, bank, None)  # (B, M, C)
            mask = None if mask is None else F.pad(mask, (0, k_ref.shape[1]))
            return _attend(attn, query, torch.cat([key, k_ref], 1), torch.cat([value, v_ref], 1), mask)
        kept = keep.nonzero().flatten()
        dropped = (~keep).nonzero().flatten()
        k_ref, v_ref = self._reference_kv(attn, bank, kept)  # (B_kept, M, C)
        mask_kept = mask_dropped = None
        if mask is not None:
            mask_kept = F.pad(mask[kept], (0, k_ref.shape[1]))
            mask_dropped = mask[dropped]
        out_kept = _attend(attn, query[kept], torch.cat([key[kept], k_ref], 1),
                           torch.cat([value[kept], v_ref], 1), mask_kept)
        out_dropped = _attend(attn, query[dropped], key[dropped], value[dropped], mask_dropped)
        return query.new_zeros(query.shape).index_copy(0, kept, out_kept).index_copy(0, dropped, out_dropped)


def spatial_self_attention_names(unet: torch.nn.Module) -> list[str]:
    """Processor names (``<module>.processor``) of the spatial self-attention layers of a UNet.

    A layer qualifies when it is the ``attn1`` of a block of a ``Transformer2DModel``
    and attends to its own tokens (not a cross-attention). Temporal attention (motion
    modules) and cross-attention never qualify, whatever their names.
    """
    names = []
    for prefix, module in unet.named_modules():
        if not isinstance(module, Transformer2DModel):
            continue
        for i, block in enumerate(module.transformer_blocks):
            attn = getattr(block, "attn1", None)
            if isinstance(attn, Attention) and not attn.is_cross_attention:
                names.append(f"{prefix}.transformer_blocks.{i}.attn1.processor")
    return names


def has_reference_attention(reference_unet: UNet2DConditionModel, denoiser: UNet2DConditionModel) -> bool:
    """True when both UNets already carry paired writer/reader processors on every spatial self-attention."""
    readers = {n for n, p in denoiser.attn_processors.items() if isinstance(p, ReferenceReaderProcessor)}
    writers = {n for n, p in reference_unet.attn_processors.items() if isinstance(p, ReferenceWriterProcessor)}
    expected = set(spatial_self_attention_names(denoiser))
    return bool(expected) and readers == writers == expected


def install_reference_attention(reference_unet: UNet2DConditionModel, denoiser: UNet2DConditionModel) -> None:
    """Pair the ReferenceNet's writers with the denoiser's readers by module name.

    Both UNets must share the block layout (the ReferenceNet is initialised from
    the denoiser, Sec. 3.3). Spatial self-attention layers get a writer
    (ReferenceNet) or a reader (denoiser); every other attention layer gets a
    :class:`BankAwareAttnProcessor`.
    """
    writers = set(spatial_self_attention_names(reference_unet))
    readers = set(spatial_self_attention_names(denoiser))
    if writers != readers:
        missing = sorted(readers ^ writers)[:3]
        raise ValueError(
            "ReferenceNet and denoiser have different self-attention layouts "
            f"(first differences: {missing}); build the ReferenceNet from the denoiser's config"
        )
    reference_unet.set_attn_processor(
        {n: ReferenceWriterProcessor(n) if n in writers else BankAwareAttnProcessor()
         for n in reference_unet.attn_processors}
    )
    denoiser.set_attn_processor(
        {n: ReferenceReaderProcessor(n) if n in readers else BankAwareAttnProcessor()
         for n in denoiser.attn_processors}
    )


def run_reference_net(
    reference_unet: UNet2DConditionModel,
    reference_latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    keep: torch.Tensor | None = None,
) -> ReferenceBank:
    """Run the ReferenceNet once at t = 0 on clean reference latents and collect its self-attention inputs."""
    bank = ReferenceBank(keep=keep)
    t0 = torch.zeros(reference_latents.shape[0], device=reference_latents.device, dtype=torch.long)
    reference_unet(
        reference_latents,  # (B, 4, h, w)
        t0,
        encoder_hidden_states=encoder_hidden_states,  # (B, L, D)
        cross_attention_kwargs={"reference_bank": bank},
        return_dict=False,
    )
    return bank
