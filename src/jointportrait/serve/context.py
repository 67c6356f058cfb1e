"""What every handler of the web demo shares: the loaded model, its lock, the limits and the temp folders."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jointportrait.applications.sampling import native_resolution
from jointportrait.loading import create_tiny_joint_model, load_joint_pipeline
from jointportrait.serve.limits import UploadLimits
from jointportrait.serve.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass
class ServeContext:
    """The server's state shared by all sessions (read-only apart from the lock).

    ``model_lock`` is held for every model call: the queue already runs one model job at
    a time (one device per server), and the lock keeps that true for any other caller of
    the handlers (a script, a test), so two jobs never share the device's memory.
    """

    pipe: Any  # JointPortraitPipeline
    workspace: Workspace
    limits: UploadLimits = field(default_factory=UploadLimits)
    tiny: bool = False
    model_name: str = "model"
    model_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def native_resolution(self) -> int:
        return native_resolution(self.pipe)

    @property
    def device(self) -> str:
        return str(self.pipe.device)

    def describe(self) -> str:
        """One line about the model for the page header."""
        unet = self.pipe.unet.config
        kind = "stage 2, mask conditioning" if self.pipe.is_inpainting_model else "stage 1, latent replacement"
        return (f"{self.model_name}: {unet.in_channels}-channel denoiser ({kind}), native size "
                f"{self.native_resolution} px, on {self.device}")


def load_serve_pipeline(model: str | Path | None, tiny: bool, device, dtype, seed: int = 0):
    """The pipeline of a joint model folder, or (``tiny``) a small random one built in memory."""
    if tiny:
        pipe = create_tiny_joint_model(seed=seed).to(device)
        if dtype != torch.float32:
            pipe = pipe.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    return load_joint_pipeline(model, device=device, dtype=dtype)
