"""Sliding jaw-line correspondences for the landmark term (paper Sec. 5.1, supplementary 7.3).

A detector's 17 jaw-line points (Multi-PIE 0-16) lie on the face's OUTLINE in
the image, and the outline is a silhouette: which surface point forms it
changes with the head pose (a turned head shows its far cheek's side, a raised
chin the underside of the jaw). A fixed mesh vertex per jaw landmark is the
outline only in the frontal view. "Landmark marching" (Zhu et al., CVPR 2015;
Cao et al., FaceWarehouse 2014) replaces it, per frame, by the outermost
vertex along a line of candidates through the fixed vertex, perpendicular to
the jaw line: the silhouette point of that line under the current pose.

Along the outline a detector's points also slide (where exactly point 3 sits on
a smooth jaw is not defined by the face), so the jaw residual can be measured
along the outline's image normal only (point-to-line).

:func:`contour_candidates` builds the candidate lines once per model;
:func:`march_contour` picks the silhouette vertex of each line in each frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jointportrait.face_models import FaceModel
from jointportrait.tracking.landmarks import JAW, NUM_LANDMARKS

NUM_JAW = 17
HEAD_REGIONS = ("face", "head_neck")


@dataclass
class Contour:
    """Candidate vertices of the jaw landmarks: ``candidates`` ``(17, C)`` int64 vertex indices (a line per
    landmark, padded by repeating the fixed vertex) and ``outward`` ``(17, 3)`` the outward direction of each
    line in the model frame."""

    candidates: torch.Tensor
    outward: torch.Tensor


def contour_candidates(model: FaceModel, width_cm: float = 0.35, inward_cm: float = 1.0, outward_cm: float = 4.0,
                       depth_cm: float = 5.0) -> Contour:
    """For each jaw landmark vertex ``p`` of the neutral face: the face and head vertices within ``width_cm`` of
    the line through ``p`` along the jaw line's outward normal (in the frontal x-y plane), from ``inward_cm``
    inside to ``outward_cm`` outside, and no more than ``depth_cm`` behind ``p`` (not the back of the head)."""
    verts = model.neutral.double()  # (V, 3)
    points = verts[model.landmark_indices[JAW]]  # (17, 3)
    regions = [model.region_names.index(n) for n in HEAD_REGIONS if n in model.region_names]
    allowed = torch.isin(model.vertex_region, torch.tensor(regions))
    xy = points[:, :2]
    tangent = torch.cat([xy[1:2] - xy[0:1], xy[2:] - xy[:-2], xy[-1:] - xy[-2:-1]])  # (17, 2) along the jaw
    tangent = tangent / tangent.norm(dim=-1, keepdim=True)
    normal = torch.stack([tangent[:, 1], -tangent[:, 0]], dim=-1)  # (17, 2)
    centre = xy.mean(0)
    normal = torch.where(((xy - centre) * normal).sum(-1, keepdim=True) < 0, -normal, normal)  # outward
    lines = []
    for k in range(NUM_JAW):
        rel = verts[:, :2] - xy[k]  # (V, 2)
        along = rel @ normal[k]
        across = (rel @ tangent[k]).abs()
        keep = allowed & (across < width_cm) & (along > -inward_cm) & (along < outward_cm)
        keep &= verts[:, 2] > points[k, 2] - depth_cm
        idx = torch.nonzero(keep).flatten()
        lines.append(torch.cat([model.landmark_indices[k : k + 1], idx]))
    size = max(len(line) for line in lines)
    candidates = torch.stack([torch.cat([line, line[:1].expand(size - len(line))]) for line in lines])  # (17, C)
    outward = torch.cat([normal, torch.zeros(NUM_JAW, 1, dtype=normal.dtype)], dim=-1).float()  # (17, 3)
    return Contour(candidates, outward)


@torch.no_grad()
def march_contour(contour: Contour, landmark_indices: torch.Tensor, camera_points: torch.Tensor,
                  rotation: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame landmark vertices ``(F, 68)`` with each jaw landmark moved to the silhouette vertex of its line,
    and the outline's outward unit normal in the image ``(F, 17, 2)``.

    ``camera_points`` ``(F, V, 3)`` camera-space vertices under the current fit, ``rotation`` ``(F, 3, 3)``
    model-to-camera rotations (including the axis flip), ``K`` ``(3, 3)``. The silhouette vertex of a line is the
    one whose projection lies farthest along the line's outward direction in the image.
    """
    num = camera_points.shape[0]
    cand = camera_points[:, contour.candidates]  # (F, 17, C, 3)
    pix = cand[..., :2] / cand[..., 2:].clamp_min(1e-3) * K.diagonal()[:2].to(cand) + K[:2, 2].to(cand)
    direction = (contour.outward.to(rotation) @ rotation.transpose(1, 2))[..., :2]  # (F, 17, 2) camera x-y
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    best = (pix * direction[:, :, None]).sum(-1).argmax(-1)  # (F, 17)
    indices = landmark_indices.expand(num, NUM_LANDMARKS).clone()
    indices[:, JAW] = torch.gather(contour.candidates.expand(num, -1, -1), 2, best[..., None])[..., 0]
    return indices, direction.float()
