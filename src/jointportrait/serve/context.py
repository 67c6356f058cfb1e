"""What every handler of the web demo shares: the loaded model, its lock, the limits and the temp folders."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jointportrait.applications.sampling import native_resolution
from jointportrait.loading import (
    create_tiny_joint_model,
    is_video_model_folder,
    load_joint_pipeline,
    load_video_pipeline,
)
from jointportrait.pipelines import JointPortraitVideoPipeline
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
    video_pipe: Any = None  # JointPortraitVideoPipeline over the same modules, when the model has motion modules

    @property
    def has_motion(self) -> bool:
        return self.video_pipe is not None

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
        motion = ", motion modules" if self.has_motion else ""
        return (f"{self.model_name}: {unet.in_channels}-channel denoiser ({kind}{motion}), native size "
                f"{self.native_resolution} px, on {self.device}")


def load_serve_pipelines(model: str | Path | None, tiny: bool, device, dtype, seed: int = 0, video: bool = False):
    """``(image pipeline, video pipeline or None)`` of a model folder (a video model folder gives both, over the
    same modules), or (``tiny``) of a small random model built in memory (``video``: with a motion adapter)."""
    if tiny:
        pipe = create_tiny_joint_model(seed=seed, video=video).to(device)
        if dtype != torch.float32:
            pipe = pipe.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
    elif is_video_model_folder(Path(model)):
        pipe = load_video_pipeline(model, device=device, dtype=dtype)
    else:
        return load_joint_pipeline(model, device=device, dtype=dtype), None
    if isinstance(pipe, JointPortraitVideoPipeline):
        return pipe.image_pipeline(), pipe
    return pipe, None
