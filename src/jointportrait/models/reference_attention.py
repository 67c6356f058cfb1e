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

Speed (issue 17): nothing the ReferenceNet computes after its last writer
reaches a reader, so :func:`run_reference_net` stops it there (the last writer
raises :class:`ReferenceNetComplete` once every writer has stored its tokens,
and the run catches it; no diffusers block is copied). Self-attention projects
queries, keys and values with one fused matrix product where the three
projections allow it; a reader projects the reference keys/values once per
sampling call (``ReferenceBank.kv_cache``) or, in training, together with its
own keys/values in one product over ``[own; reference]`` tokens.
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
    #: while the ReferenceNet runs: stop it once this many writers have stored their tokens (None: run it all)
    stop_after: int | None = field(default=None, repr=False)
    _rows: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def batch_size(self) -> int:
        return next(iter(self.features.values())).shape[0] if self.features else 0

    @property
    def all_dropped(self) -> bool:
        """True when every row dropped its reference (the readers then attend to their own tokens only)."""
        return self.keep is not None and self.kept_and_dropped()[0].numel() == 0

    def kept_and_dropped(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices ``(kept, dropped)`` of a bank with ``keep`` flags, found once per bank (every reader of
        every step asks; on a GPU each search would wait for the device)."""
        if self._rows is None:
            self._rows = (self.keep.nonzero().flatten(), (~self.keep).nonzero().flatten())
        return self._rows

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


class ReferenceNetComplete(Exception):
    """Raised by the last writer of a ReferenceNet run: every reader's tokens are in the bank, and nothing
    the ReferenceNet would compute after this point reaches the denoiser. :func:`run_reference_net` catches it."""


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


def _plain_linears(*layers: torch.nn.Module) -> bool:
    """True when the layers are plain ``nn.Linear`` with the same input width and all or none with a bias
    (then their products fuse into one; a LoRA-wrapped or otherwise replaced layer keeps its own call)."""
    first = layers[0]
    return all(type(m) is torch.nn.Linear and m.in_features == first.in_features
               and (m.bias is None) == (first.bias is None) for m in layers)


def _fused_linear(x: torch.Tensor, *layers: torch.nn.Linear) -> tuple[torch.Tensor, ...]:
    """``layer(x)`` for every layer, as one matrix product over the stacked weights (differentiable)."""
    weight = torch.cat([m.weight for m in layers])  # (sum out, in)
    bias = None if layers[0].bias is None else torch.cat([m.bias for m in layers])
    return F.linear(x, weight, bias).split([m.out_features for m in layers], dim=-1)


def self_projections(attn: Attention, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, keys and values of self-attention over ``hidden_states`` ``(B, N, C)``; one fused product
    where the three projections allow it."""
    if _plain_linears(attn.to_q, attn.to_k, attn.to_v):
        return _fused_linear(hidden_states, attn.to_q, attn.to_k, attn.to_v)  # (B, N, C) each
    return attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)


def key_value(attn: Attention, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of ``tokens`` ``(B, M, C)``; one fused product where the projections allow it."""
    if _plain_linears(attn.to_k, attn.to_v):
        return _fused_linear(tokens, attn.to_k, attn.to_v)  # (B, M, C) each
    return attn.to_k(tokens), attn.to_v(tokens)


class BankAwareAttnProcessor:
    """Ordinary scaled-dot-product attention (as diffusers' ``AttnProcessor2_0``) that accepts a
    ``reference_bank`` keyword and ignores it. Subclasses change :meth:`observe` (what the layer sees)
    and :meth:`self_attention` (how it attends over its own tokens).
    """

    def observe(self, hidden_states: torch.Tensor, bank: ReferenceBank | None) -> None:
        """Called with the normalised input tokens ``(B, N, C)`` of a self-attention call, before any projection."""

    def self_attention(self, attn: Attention, hidden_states: torch.Tensor, mask: torch.Tensor | None,
                       bank: ReferenceBank | None) -> torch.Tensor:
        """Attention output ``(B, N, C)`` of self-attention over the normalised tokens, before the output projection."""
        return _attend(attn, *self_projections(attn, hidden_states), mask)

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
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if encoder_hidden_states is None:
            self.observe(hidden_states, reference_bank)
            out = self.self_attention(attn, hidden_states, attention_mask, reference_bank)
        else:
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
            out = _attend(attn, attn.to_q(hidden_states), *key_value(attn, context), attention_mask)

        out = attn.to_out[1](attn.to_out[0](out))  # (B, N, C)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class ReferenceWriterProcessor(BankAwareAttnProcessor):
    """ReferenceNet side: ordinary self-attention that also stores its input tokens in the bank as ``name``.

    The writer that completes the bank (``len(bank.features) == bank.stop_after``) raises
    :class:`ReferenceNetComplete` before computing anything more.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def observe(self, hidden_states, bank):
        if bank is None:
            return
        bank.features[self.name] = hidden_states  # (B, M, C)
        if bank.stop_after is not None and len(bank.features) >= bank.stop_after:
            raise ReferenceNetComplete


class ReferenceReaderProcessor(BankAwareAttnProcessor):
    """Denoiser side: keys/values over ``[own, reference]`` tokens, queries over its own tokens.

    Rows whose ``keep`` flag is False attend to their own tokens only (computed
    apart: no masked attention and no wasted work on dropped rows). Without a bank,
    or without this layer in it, it is plain self-attention.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def _check_batch(self, bank: ReferenceBank, batch: int) -> None:
        if bank.features[self.name].shape[0] != batch:
            raise ValueError(
                f"reference bank has batch {bank.features[self.name].shape[0]} but {self.name} sees "
                f"batch {batch}; align it with ReferenceBank.select"
            )

    def _attend_with_reference(self, attn: Attention, own: torch.Tensor, reference: torch.Tensor,
                               mask: torch.Tensor | None, bank: ReferenceBank, rows: torch.Tensor | None):
        """Attention of ``own`` tokens ``(B', N, C)`` over ``[own, reference]`` ``(B', N + M, C)``.

        Without autograd the reference keys/values come from (or go to) ``bank.kv_cache``: projected
        once per sampling call. With autograd, own and reference keys/values are one product over
        the concatenated tokens: projected once per training step.
        """
        mask = None if mask is None else F.pad(mask, (0, reference.shape[1]))
        if torch.is_grad_enabled():
            query = attn.to_q(own)  # (B', N, C)
            key, value = key_value(attn, torch.cat([own, reference.to(own.dtype)], 1))  # (B', N + M, C)
            return _attend(attn, query, key, value, mask)
        cached = self.cache_projections(attn, bank, reference, own.dtype)  # (B', M, C) each
        query, key, value = self_projections(attn, own)
        key = torch.cat([key, cached[0].to(key.dtype)], 1)  # (B', N + M, C)
        value = torch.cat([value, cached[1].to(value.dtype)], 1)
        return _attend(attn, query, key, value, mask)

    def cache_projections(self, attn: Attention, bank: ReferenceBank, reference: torch.Tensor | None = None,
                          dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference keys/values of this layer from ``bank.kv_cache``, projected and stored on the first
        request (rows of kept references only when the bank has ``keep`` flags)."""
        cached = bank.kv_cache.get(self.name)
        if cached is None:
            if reference is None:
                reference = bank.features[self.name]  # (B, M, C)
                if bank.keep is not None:
                    reference = reference[bank.kept_and_dropped()[0]]
            cached = key_value(attn, reference.to(dtype or attn.to_k.weight.dtype))  # (B', M, C) each
            bank.kv_cache[self.name] = cached
        return cached

    def self_attention(self, attn, hidden_states, mask, bank):
        if bank is None or self.name not in bank.features:
            return super().self_attention(attn, hidden_states, mask, bank)
        self._check_batch(bank, hidden_states.shape[0])
        reference = bank.features[self.name]  # (B, M, C)
        if bank.keep is None:
            return self._attend_with_reference(attn, hidden_states, reference, mask, bank, None)
        kept, dropped = bank.kept_and_dropped()
        if kept.numel() == 0:
            return super().self_attention(attn, hidden_states, mask, bank)
        if dropped.numel() == 0:
            return self._attend_with_reference(attn, hidden_states, reference, mask, bank, None)
        out_kept = self._attend_with_reference(attn, hidden_states[kept], reference[kept],
                                               None if mask is None else mask[kept], bank, kept)
        out_dropped = super().self_attention(attn, hidden_states[dropped],
                                             None if mask is None else mask[dropped], bank)
        out = hidden_states.new_empty(hidden_states.shape[:2] + out_kept.shape[2:])  # (B, N, C)
        return out.index_copy(0, kept, out_kept).index_copy(0, dropped, out_dropped)


@torch.no_grad()
def cache_reference_projections(denoiser: torch.nn.Module, bank: ReferenceBank) -> None:
    """Project the reference keys/values of every reader of ``denoiser`` into ``bank.kv_cache`` now.

    Sampling calls this once per call, before the loop: every step then finds them cached, and a
    compiled denoiser (``torch.compile``) sees the same code path at every step. The rows of kept and
    dropped references are found here too.
    """
    if bank.keep is not None:
        bank.kept_and_dropped()
    if bank.all_dropped:
        return
    for module in denoiser.modules():
        if (isinstance(module, Attention) and isinstance(module.processor, ReferenceReaderProcessor)
                and module.processor.name in bank.features):
            module.processor.cache_projections(module, bank)


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


def writer_count(reference_unet: torch.nn.Module) -> int:
    """Number of :class:`ReferenceWriterProcessor` layers of a ReferenceNet."""
    return sum(isinstance(m, Attention) and isinstance(m.processor, ReferenceWriterProcessor)
               for m in reference_unet.modules())


def run_reference_net(
    reference_unet: UNet2DConditionModel,
    reference_latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    keep: torch.Tensor | None = None,
    stop_early: bool = True,
) -> ReferenceBank:
    """Run the ReferenceNet once at t = 0 on clean reference latents and collect its self-attention inputs.

    With ``stop_early`` the run ends at the last writer (:class:`ReferenceNetComplete`): the rest of
    the ReferenceNet (the last transformer block's attention, cross-attention and feed-forward, the
    output norm and conv) feeds no reader, so it is neither computed nor, in training, part of the
    autograd graph. The bank is the same either way. Under non-reentrant gradient checkpointing
    (diffusers' default) a recomputed block stops on its own once it has recomputed the tensors the
    backward pass needs, before the writer; the bank is disarmed after the run, so a recomputation that
    gets as far as the writer (early stop switched off) runs the block through without raising.
    """
    bank = ReferenceBank(keep=keep, stop_after=writer_count(reference_unet) if stop_early else None)
    t0 = torch.zeros(reference_latents.shape[0], device=reference_latents.device, dtype=torch.long)
    try:
        reference_unet(
            reference_latents,  # (B, 4, h, w)
            t0,
            encoder_hidden_states=encoder_hidden_states,  # (B, L, D)
            cross_attention_kwargs={"reference_bank": bank},
            return_dict=False,
        )
    except ReferenceNetComplete:
        pass
    finally:
        bank.stop_after = None
    return bank
