"""A UNet that reads a ReferenceNet through self-attention, as one trainable module (paper Sec. 3.2-3.3).

:class:`ReferenceNetDenoiser` is the base of every denoiser that has a
ReferenceNet: the joint denoiser (:class:`~jointportrait.models.JointDenoiser`)
and the separate conditional networks of the "w/o joint learning" baseline
(:class:`~jointportrait.models.baselines.ConditionalDenoiser`). It owns the
ReferenceNet, installs the writer/reader processors once, and gives the losses
and pipelines one call: ``reference latents -> ReferenceBank -> prediction``.

Wrapping both UNets in one ``nn.Module`` lets ``accelerate.prepare`` put a
single DDP/FSDP wrapper around everything that trains. The ReferenceNet sees
the clean reference latent (t = 0) and the same cross-attention conditioning
as the denoiser.
"""

from __future__ import annotations

import logging
import time

import torch
from diffusers import UNet2DConditionModel

from jointportrait.models.reference_attention import (
    ReferenceBank,
    cache_reference_projections,
    has_reference_attention,
    install_reference_attention,
    run_reference_net,
)

logger = logging.getLogger(__name__)


class ReferenceNetDenoiser(torch.nn.Module):
    """``unet`` reading from ``reference_unet`` (the reference latent's channels, e.g. 4).

    The processors are installed on construction unless both UNets carry paired
    ones already (a pipeline built from a trained module's UNets reuses them).
    """

    def __init__(self, unet: UNet2DConditionModel, reference_unet: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet = unet
        self.reference_unet = reference_unet
        if not has_reference_attention(reference_unet, unet):
            install_reference_attention(reference_unet, unet)
        # a compiled UNet forward (a function, so no second copy of the UNet among the submodules)
        self._compiled_forward = None
        self.compile_seconds: float | None = None  # time of the first compiled call (compilation included)

    def compile_unet(self, **compile_kwargs) -> None:
        """Run the denoiser UNet through ``torch.compile(unet.forward, **compile_kwargs)`` from now on.

        The first call compiles (its time is logged and kept in :attr:`compile_seconds`); a new
        input shape compiles again. The weights and the saved model are unchanged.
        """
        self._compiled_forward = torch.compile(self.unet.forward, **compile_kwargs)
        self.compile_seconds = None

    def _unet(self, *args, **kwargs):
        if self._compiled_forward is None:
            return self.unet(*args, **kwargs)
        if self.compile_seconds is not None:
            return self._compiled_forward(*args, **kwargs)
        start = time.perf_counter()
        out = self._compiled_forward(*args, **kwargs)
        self.compile_seconds = time.perf_counter() - start
        logger.info("torch.compile: the first denoiser call took %.1f s (compilation included)", self.compile_seconds)
        return out

    @property
    def latent_channels(self) -> int:
        """Channels of one domain's latent (the ReferenceNet's input)."""
        return self.reference_unet.config.in_channels

    def encode_reference(
        self,
        reference_latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> ReferenceBank:
        """Run the ReferenceNet once at t = 0 and collect its self-attention inputs."""
        return run_reference_net(self.reference_unet, reference_latents, encoder_hidden_states, keep)

    def prepare_for_sampling(self, bank: ReferenceBank) -> ReferenceBank:
        """``bank`` with the reference keys/values of every reader projected (once per sampling call, before
        the loop; its rows must already match the denoiser batch)."""
        cache_reference_projections(self.unet, bank)
        return bank

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        reference_latents: torch.Tensor | None = None,
        reference_keep: torch.Tensor | None = None,
        reference_bank: ReferenceBank | None = None,
    ) -> torch.Tensor:
        """The UNet's prediction for ``sample``.

        Give either ``reference_latents`` (the ReferenceNet runs now, as in
        training) or a ``reference_bank`` computed earlier (as in sampling).
        """
        if reference_bank is None:
            if reference_latents is None:
                raise ValueError("pass reference_latents or reference_bank")
            reference_bank = self.encode_reference(reference_latents, encoder_hidden_states, reference_keep)
        pred = self._unet(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs={"reference_bank": reference_bank},
            return_dict=False,
        )[0]
        if torch.is_grad_enabled() and reference_bank.all_dropped:
            # no reader used the bank: keep the ReferenceNet in the graph for data-parallel training
            pred = pred + reference_bank.zero_touch().to(pred.dtype)
        return pred

    def freeze_reference_parameters_without_reader(self, latent_size: int = 16) -> list[str]:
        """Freeze ReferenceNet parameters that feed no reader (e.g. its output conv); return their names.

        Found by a probe: one small forward/backward from the bank; a parameter
        that receives no gradient cannot influence the denoiser. DDP needs these
        frozen (or ``find_unused_parameters``).
        """
        ref = self.reference_unet
        param = next(ref.parameters())
        was_training = ref.training
        ref.eval()
        saved = [p.grad for p in ref.parameters()]
        for p in ref.parameters():
            p.grad = None
        latents = torch.randn(1, ref.config.in_channels, latent_size, latent_size, device=param.device, dtype=param.dtype)
        ehs = torch.randn(1, 1, ref.config.cross_attention_dim, device=param.device, dtype=param.dtype)
        bank = self.encode_reference(latents, ehs)
        torch.stack([f.float().sum() for f in bank.features.values()]).sum().backward()
        frozen = []
        for (name, p), grad in zip(ref.named_parameters(), saved):
            if p.requires_grad and p.grad is None:
                p.requires_grad_(False)
                frozen.append(name)
            p.grad = grad
        ref.train(was_training)
        return frozen
