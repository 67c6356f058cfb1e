"""Energy terms of the face tracker (paper Sec. 5.1, supplementary 7.3).

Landmark reprojection, Gaussian priors on the identity and expression codes,
temporal smoothness on pose and expression, a robust photometric term and an
albedo smoothness term. Each is a pure function returning a scalar; the
stages (:mod:`jointportrait.tracking.stages`) weight and sum them.
"""

from __future__ import annotations

import torch


def landmark_energy(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                    sigma: float) -> torch.Tensor:
    """``sum_f sum_p w_p |x_fp - y_fp|^2 / (2 sigma^2)`` of pixels ``(F, 68, 2)``, weights ``(68,)``."""
    sq = ((predicted - target) ** 2).sum(-1)  # (F, 68)
    return (sq * weights).sum() / (2.0 * sigma**2)


def gaussian_prior(coefficients: torch.Tensor) -> torch.Tensor:
    """Negative log of a unit Gaussian on coefficients ``(N, K)``: ``sum |c|^2 / 2``."""
    return 0.5 * (coefficients**2).sum()


def temporal_smoothness(track: torch.Tensor) -> torch.Tensor:
    """``sum_f |x_{f+1} - x_f|^2`` of a per-frame track ``(F, D)`` (0 for one frame)."""
    if track.shape[0] < 2:
        return track.sum() * 0.0
    return ((track[1:] - track[:-1]) ** 2).sum()


def photometric_error(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over covered pixels of the per-pixel colour distance ``|r - t|_2`` (robust, L2,1 norm).

    rendered, target ``(F, H, W, 3)``; mask ``(F, H, W)`` bool.
    """
    diff = torch.sqrt(((rendered - target) ** 2).sum(-1) + 1e-8)  # (F, H, W)
    return (diff * mask).sum() / mask.sum().clamp_min(1)


def mesh_edges(triangles: torch.Tensor) -> torch.Tensor:
    """Unique undirected edges ``(E, 2)`` of triangles ``(T, 3)``."""
    edges = torch.cat([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])  # (3T, 2)
    return torch.unique(torch.sort(edges, dim=1).values, dim=0)


def edge_smoothness(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertex values ``(V, C)`` across edges ``(E, 2)``."""
    return ((values[edges[:, 0]] - values[edges[:, 1]]) ** 2).sum(-1).mean()
