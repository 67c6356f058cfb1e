"""The training-stage protocol: what one stage of the paper trains, on which inputs, with which loss.

The trainer (:mod:`jointportrait.training.trainer`) knows nothing else about a
stage: it asks the :class:`TrainingStage` for the module to optimise, lets it
prepare each batch (stage 2 samples its masks here), calls its loss, and asks
it for the pipeline that validation samples and for the export. A stage owns
its frozen parts (the VAE, the image encoder): it freezes them, casts them to
the weight dtype for training, and exports them in their original precision.
Stages are looked up by ``model.kind`` in :data:`jointportrait.training.stages.STAGES`.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from jointportrait.training.config import RunConfig
from jointportrait.training.data import build_datasets
from jointportrait.training.validation import validation_grid


class StageLoss(Protocol):
    """What a stage's loss returns: the scalar to minimise and two halves for logging."""

    loss: torch.Tensor
    loss_rgb: torch.Tensor
    loss_depth: torch.Tensor


class TrainingStage(ABC):
    """One training stage. Subclasses set :attr:`model` (the trained module) and :attr:`frozen`
    (name -> frozen module or None) in ``__init__`` and implement :meth:`loss` and :meth:`export`."""

    #: the trainer samples a validation grid with :meth:`pipeline` every ``validation.every`` steps
    validates: bool = False

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.model: torch.nn.Module
        self.frozen: dict[str, torch.nn.Module | None] = {}
        self._export_frozen: dict[str, torch.nn.Module | None] | None = None

    # ------------------------------------------------------------- data
    @classmethod
    def dataset(cls, cfg: RunConfig, split: str, seed: int, train: bool = True) -> Dataset:
        """The stage's training (``train``) or validation set from ``cfg.data``: frames with a reference by
        default (a stage that reads clips overrides this). Built before the stage, so a wrong path fails
        before anything is loaded."""
        return build_datasets(cfg.dataset_sources(), cfg.data.resolution, split, seed, train=train)

    # ----------------------------------------------------------- set-up
    def prepare(self, device: torch.device, weight_dtype: torch.dtype) -> None:
        """Freeze the frozen parts and cast them to ``weight_dtype`` on ``device`` (a full-precision copy is
        kept for the export); put the trained module in training mode."""
        if weight_dtype != torch.float32:
            self._export_frozen = {k: copy.deepcopy(m) if m is not None else None for k, m in self.frozen.items()}
        for module in self.frozen.values():
            if module is not None:
                module.requires_grad_(False).eval().to(device)
                if next(module.parameters()).dtype != weight_dtype:  # diffusers warns on a no-op dtype cast
                    module.to(dtype=weight_dtype)
        self.model.train()

    def trainable_parameters(self, model: torch.nn.Module | None = None) -> list[torch.nn.Parameter]:
        """The parameters the optimizer updates (of ``model``, default: the stage's own module)."""
        return [p for p in (model if model is not None else self.model).parameters() if p.requires_grad]

    @property
    def latent_vae(self) -> torch.nn.Module | None:
        """The frozen VAE whose latents a latent cache may precompute (None: nothing to precompute)."""
        return self.frozen.get("vae")

    # ------------------------------------------------------------ steps
    def prepare_batch(self, batch: dict, generator: torch.Generator) -> dict:
        """Stage-specific inputs added to a collated batch (on the CPU, before it moves to the device)."""
        return batch

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: dict, generator: torch.Generator) -> StageLoss:
        """The loss of one micro-batch; ``model`` is the (possibly DDP-wrapped) trained module."""

    # ----------------------------------------------------- sampling, export
    def pipeline(self, model: torch.nn.Module):
        """A pipeline over the unwrapped trained ``model`` and the frozen parts (for validation)."""
        raise NotImplementedError(f"{type(self).__name__} has no sampling pipeline")

    def validation_grid(self, pipe, samples: list[dict], num_inference_steps: int, guidance_scale: float,
                        seed: int) -> np.ndarray:
        """The validation image ``(rows * H, columns * W, 3)`` uint8 sampled with :meth:`pipeline`'s ``pipe``."""
        return validation_grid(pipe, samples, num_inference_steps, guidance_scale, seed)

    @abstractmethod
    def export(self, model: torch.nn.Module, out: Path) -> None:
        """Save the unwrapped, full-precision trained ``model`` with the frozen parts to ``out``."""

    def export_frozen(self) -> dict[str, torch.nn.Module | None]:
        """The frozen parts in their original precision (for the export)."""
        return self._export_frozen if self._export_frozen is not None else self.frozen
