"""The stages of the paper's baselines (Sec. 5.2 "w/o joint learning", Sec. 9 "w/o ReferenceNet").

Each starts from the same base model as the joint model and trains with the
same data and settings; only the network and its loss differ
(:mod:`jointportrait.models.baselines`, :mod:`jointportrait.objective`). The
export is the method's pipeline folder
(:class:`~jointportrait.pipelines.SeparateConditionalPipeline`,
:class:`~jointportrait.pipelines.ConcatReferencePipeline`), image encoder included.
"""

from __future__ import annotations

from pathlib import Path

import torch

from jointportrait.models.baselines import (
    CONCAT_REFERENCE,
    DEPTH_TO_IMAGE,
    IMAGE_TO_DEPTH,
    baseline_components_from_base,
    build_baseline_model,
)
from jointportrait.objective import concat_reference_loss, conditional_diffusion_loss
from jointportrait.pipelines import ConcatReferencePipeline, SeparateConditionalPipeline
from jointportrait.training.config import RunConfig
from jointportrait.training.model_init import build_base_components
from jointportrait.training.stages.diffusion import DiffusionStage


class SeparateStage(DiffusionStage):
    """One of the two separate conditional networks of "w/o joint learning"."""

    direction: str

    def __init__(self, cfg: RunConfig) -> None:
        components = baseline_components_from_base(build_base_components(cfg), self.direction)
        super().__init__(cfg, components, build_baseline_model(self.direction, components),
                         conditional_diffusion_loss)

    def export(self, model: torch.nn.Module, out: Path) -> None:
        c = self.exported_components(model)
        self.save_pipeline(SeparateConditionalPipeline(**c.pipeline_kwargs(), direction=self.direction), out)


class ImageToDepthStage(SeparateStage):
    """``model.kind: image_to_depth``: the separate depth-estimation network (Table 1, "w/o Joint Learning")."""

    direction = IMAGE_TO_DEPTH


class DepthToImageStage(SeparateStage):
    """``model.kind: depth_to_image``: the separate depth-conditioned image network (Table 2)."""

    direction = DEPTH_TO_IMAGE


class ConcatReferenceStage(DiffusionStage):
    """``model.kind: concat_reference``: the joint model without a ReferenceNet (Sec. 9, Fig. 9)."""

    def __init__(self, cfg: RunConfig) -> None:
        components = baseline_components_from_base(build_base_components(cfg), CONCAT_REFERENCE)
        super().__init__(cfg, components, build_baseline_model(CONCAT_REFERENCE, components), concat_reference_loss)

    def export(self, model: torch.nn.Module, out: Path) -> None:
        c = self.exported_components(model)
        self.save_pipeline(ConcatReferencePipeline(**c.pipeline_kwargs(with_reference_unet=False)), out)
