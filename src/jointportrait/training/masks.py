"""Mask sampler of the inpainting fine-tune (paper Sec. 4, stage 2; DESIGN.md "Fixed conventions").

Every training sample of stage 2 gets one mask per domain, 1 = generate and
0 = keep. A *task* decides the pair; the tasks are the table
:data:`jointportrait.conditioning.TASKS` that the applications use too:

- ``depth_estimation``: rgb 0, depth 1 (the image is given, depth is generated);
- ``depth_to_image``: rgb 1, depth 0;
- ``joint_generation``: rgb 1, depth 1 (nothing is given, as in stage 1);
- ``rgb_editing``: a spatial mask on RGB, depth given (the paper's editing case);
- ``joint_editing``: the same spatial mask on both domains.

Spatial masks (registry :data:`SPATIAL_MASKS`) are random boxes, brush
strokes, or the face region (the sample's skin mask, else its valid-depth
mask, grown by a random margin). All functions are pure: randomness comes
from the ``generator`` argument only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from jointportrait.conditioning import TASKS


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0, n: int = 1) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def box_mask(height: int, width: int, generator: torch.Generator | None = None,
             min_frac: float = 0.2, max_frac: float = 0.6) -> torch.Tensor:
    """One axis-aligned box ``(1, H, W)``; sides are ``min_frac..max_frac`` of the image side."""
    bh = max(1, round(float(_uniform(generator, min_frac, max_frac)) * height))
    bw = max(1, round(float(_uniform(generator, min_frac, max_frac)) * width))
    top = int(torch.randint(0, height - bh + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - bw + 1, (1,), generator=generator))
    mask = torch.zeros(1, height, width)
    mask[:, top:top + bh, left:left + bw] = 1.0
    return mask


def _segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance of ``points`` (N, 2) to the segment ``a``-``b`` (each (2,))."""
    ab = b - a
    t = ((points - a) @ ab / ab.dot(ab).clamp_min(1e-12)).clamp(0.0, 1.0)  # (N,)
    closest = a + t[:, None] * ab  # (N, 2)
    return (points - closest).norm(dim=1)


def brush_mask(height: int, width: int, generator: torch.Generator | None = None,
               max_strokes: int = 4, max_vertices: int = 6) -> torch.Tensor:
    """Free-form brush strokes ``(1, H, W)``: random polylines with round caps (as in LaMa/SD-inpainting)."""
    side = min(height, width)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten()], dim=1)  # (H*W, 2) as (x, y)
    mask = torch.zeros(height * width, dtype=torch.bool)
    n_strokes = int(torch.randint(1, max_strokes + 1, (1,), generator=generator))
    for _ in range(n_strokes):
        # at least half a pixel diagonal: a stroke always covers the pixel centres next to it (small images)
        radius = max(float(_uniform(generator, 0.03, 0.08)) * side, math.sqrt(0.5))
        point = torch.stack([_uniform(generator, 0, width - 1)[0], _uniform(generator, 0, height - 1)[0]])
        for _ in range(int(torch.randint(1, max_vertices + 1, (1,), generator=generator))):
            angle = float(_uniform(generator, 0.0, 2 * math.pi))
            length = float(_uniform(generator, 0.1, 0.4)) * side
            step = torch.tensor([math.cos(angle), math.sin(angle)]) * length
            nxt = torch.stack([(point[0] + step[0]).clamp(0, width - 1), (point[1] + step[1]).clamp(0, height - 1)])
            mask |= _segment_distance(grid, point, nxt) <= radius
            point = nxt
    return mask.view(1, height, width).float()


def face_mask(region: torch.Tensor, generator: torch.Generator | None = None, max_margin: float = 0.08) -> torch.Tensor:
    """The face ``region`` ``(1, H, W)`` in {0, 1} grown by a random margin (up to ``max_margin`` of the side)."""
    height, width = region.shape[-2:]
    if region.sum() == 0:  # no face region known: fall back to a box
        return box_mask(height, width, generator)
    radius = int(float(_uniform(generator, 0.0, max_margin)) * min(height, width))
    grown = F.max_pool2d(region[None].float(), 2 * radius + 1, stride=1, padding=radius) if radius else region[None]
    return (grown[0] > 0.5).float()


SpatialMask = Callable[[dict, int, torch.Generator | None], torch.Tensor]


def _face_region(sample: dict, index: int) -> torch.Tensor:
    """Skin mask when the record has one (the dataset gives ones when absent), else the valid-depth mask."""
    skin = sample.get("skin_mask")
    if skin is not None and float(skin[index].mean()) < 1.0:
        return skin[index]
    return sample["valid"][index]


# name -> spatial mask of sample ``index`` of a batch, shape (1, H, W)
SPATIAL_MASKS: dict[str, SpatialMask] = {
    "box": lambda batch, i, g: box_mask(*batch["image"].shape[-2:], generator=g),
    "brush": lambda batch, i, g: brush_mask(*batch["image"].shape[-2:], generator=g),
    "face": lambda batch, i, g: face_mask(_face_region(batch, i), generator=g),
}


class MaskSampler:
    """Draws a task per sample with weights ``tasks``, and a spatial mask kind with weights ``spatial``."""

    def __init__(self, tasks: dict[str, float], spatial: dict[str, float]) -> None:
        for name, registry, weights in (("task", TASKS, tasks), ("spatial mask", SPATIAL_MASKS, spatial)):
            unknown = set(weights) - set(registry)
            if unknown:
                raise ValueError(f"unknown {name} {sorted(unknown)}; known: {sorted(registry)}")
        self.task_names = [n for n, w in tasks.items() if w > 0]
        self.task_weights = torch.tensor([tasks[n] for n in self.task_names], dtype=torch.float64)
        self.spatial_names = [n for n, w in spatial.items() if w > 0]
        self.spatial_weights = torch.tensor([spatial[n] for n in self.spatial_names], dtype=torch.float64)

    def sample(self, batch: dict, generator: torch.Generator | None = None) -> tuple[dict, list[str]]:
        """``{"rgb_mask", "depth_mask"}`` each ``(B, 1, H, W)`` for ``batch``, and the task name per sample."""
        bsz, (height, width) = batch["image"].shape[0], batch["image"].shape[-2:]
        picks = torch.multinomial(self.task_weights, bsz, replacement=True, generator=generator)
        ones = torch.ones(1, height, width)
        rgb, depth, names = [], [], []
        for i, pick in enumerate(picks.tolist()):
            name = self.task_names[pick]
            spatial = None
            if TASKS[name].needs_spatial_mask:
                kind = self.spatial_names[int(torch.multinomial(self.spatial_weights, 1, generator=generator))]
                spatial = SPATIAL_MASKS[kind](batch, i, generator)
            m_rgb, m_depth = TASKS[name].masks(spatial, like=ones)
            rgb.append(m_rgb)
            depth.append(m_depth)
            names.append(name)
        device = batch["image"].device
        return {"rgb_mask": torch.stack(rgb).to(device), "depth_mask": torch.stack(depth).to(device)}, names
