"""How close the face model can get to a real face at all: a direct 3-D fit to a scan (paper Sec. 5.1).

The tracker sees a face only through landmarks and pixels; its depth can be
no better than the best shape the face model has for that face. This module
fits the model to the scan's true geometry (:mod:`jointportrait.tracking.scan`)
with every piece of information a tracker lacks, and its depth error is the
floor the tracker is measured against.

The fit is an iterative closest point (ICP) registration of the model's face
skin vertices to the scan's face region:

1. Start: the similarity (scale, rotation, translation; Umeyama 1991) that
   maps the model's landmark vertices onto the scan's 3-D landmarks (without
   the jaw line, whose points lie on the silhouette, not on fixed skin).
2. Repeat: pair every model skin vertex with its nearest point on the scan
   surface (a dense sampling of the scan's face region; pairs farther than a
   shrinking distance are dropped), then (a) the similarity of the model to
   the paired points (Umeyama, point to point), and (b) the coefficients
   (identity and expression) by linear least squares on the point-to-plane
   residuals ``n . (s R (m + B c) + t - p)`` plus a quarter weight of point to
   point residuals and a weak ridge prior ``prior |c|^2``. Blendshape weights
   are bounded to [0, 1] (``scipy.optimize.lsq_linear``).

With no coefficients the same loop places the neutral model rigidly (plus
scale) on the scan: the "neutral model at the true pose" reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import lsq_linear
from scipy.spatial import cKDTree

from jointportrait.face_models import FaceModel
from jointportrait.tracking.scan import Scan

logger = logging.getLogger(__name__)

EXPRESSION_MODES = ("none", "pca", "blendshapes")
POINT_WEIGHT = 0.25  # point-to-point residuals next to the point-to-plane ones (keeps tangential sliding bounded)
SAMPLES_PER_TRIANGLE = 6


@dataclass
class FloorFit:
    """The model fitted to the scan, in the scan's canonical frame: ``scale * R @ v + t`` of the model
    vertices ``v``; ``identity`` (N,) and ``expression`` (K,) coefficients (PCA components or blendshape
    weights, per ``expression_mode``); ``rms_cm`` the RMS point-to-plane distance of the last pairs."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    expression_mode: str
    rms_cm: float
    pairs: int

    def vertices(self, model: FaceModel) -> torch.Tensor:
        """All model vertices ``(V, 3)`` in the scan's canonical frame."""
        verts = model_vertices(model, self.identity, self.expression, self.expression_mode)
        return torch.from_numpy(self.scale * verts @ self.rotation.T + self.translation).float()


def model_vertices(model: FaceModel, identity: np.ndarray, expression: np.ndarray, mode: str) -> np.ndarray:
    """Model-frame vertices ``(V, 3)`` float64 of the coefficients."""
    verts = model.neutral.double().numpy().copy()
    if identity.size:
        verts += np.einsum("k,kvc->vc", identity, model.identity_basis[: identity.size].double().numpy())
    if mode != "none" and expression.size:
        basis = model.blendshapes if mode == "blendshapes" else model.expression_basis
        verts += np.einsum("k,kvc->vc", expression, basis.double().numpy())
    return verts


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray,
                                                                                             np.ndarray]:
    """Scale, rotation ``(3, 3)`` and translation ``(3,)`` minimising ``sum w |s R x + t - y|^2`` over point
    pairs ``(N, 3)`` (Umeyama 1991, reflections excluded)."""
    w = np.ones(len(source)) if weights is None else weights
    w = w / w.sum()
    mx, my = w @ source, w @ target
    xs, ys = source - mx, target - my
    cov = (ys * w[:, None]).T @ xs  # (3, 3)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / (w @ (xs**2).sum(1)))
    return scale, rotation, my - scale * rotation @ mx


def sample_surface(scan: Scan, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(N, 3)`` and unit normals ``(N, 3)`` on the given scan triangles: corners, centroid and
    edge-and-centre blends (``SAMPLES_PER_TRIANGLE`` fixed barycentric points per triangle)."""
    verts = scan.vertices.double().numpy()
    corners = verts[scan.triangles.numpy()[triangles]]  # (T, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    bary = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 6, 1 / 6],
                     [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3], [0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]])
    points = np.einsum("bk,tkc->tbc", bary, corners).reshape(-1, 3)
    return points, np.repeat(normals, len(bary), axis=0)


def _solve_coefficients(moved: np.ndarray, rest: np.ndarray, normals: np.ndarray, ridge: float,
                        bounds: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Coefficients ``(K,)`` minimising ``sum_p (n_p . (M_p c - r_p))^2 + POINT_WEIGHT |M_p c - r_p|^2 +
    ridge |c|^2`` for the placed bases ``M`` ``(K, P, 3)``, residual targets ``r`` ``(P, 3)`` and normals
    ``(P, 3)``, through the normal equations (a Cholesky factor turns the bounded case into a K x K
    bounded least-squares problem)."""
    m, r, n = (torch.from_numpy(np.ascontiguousarray(a)) for a in (moved, rest, normals))  # torch's BLAS: steady
    plane = torch.einsum("kpc,pc->kp", m, n)  # (K, P)
    flat = m.reshape(len(m), -1)  # (K, 3P)
    gram = plane @ plane.T + POINT_WEIGHT * flat @ flat.T + ridge * torch.eye(len(m), dtype=m.dtype)
    rhs = plane @ (r * n).sum(1) + POINT_WEIGHT * flat @ r.reshape(-1)
    if bounds is None:
        return torch.linalg.solve(gram, rhs).numpy()
    chol = torch.linalg.cholesky(gram)  # gram = L L^T: |A c - b|^2 = |L^T c - L^-1 A^T b|^2 + const
    target = torch.linalg.solve_triangular(chol, rhs[:, None], upper=False)[:, 0]
    return lsq_linear(chol.T.numpy(), target.numpy(), bounds=bounds, method="bvls").x


def fit_model_to_scan(model: FaceModel, scan: Scan, expression_mode: str = "pca", num_identity: int | None = None,
                      iterations: int = 40, prior: float = 1e-3,
                      distances_cm: tuple[float, float] = (2.0, 0.5)) -> FloorFit:
    """Fit identity, expression and a similarity of ``model`` to the scan's face region (module docstring).

    ``expression_mode``: ``"none"`` (no coefficients at all when ``num_identity`` is 0: the neutral model),
    ``"pca"`` (the model's 25 components) or ``"blendshapes"`` (all blendshapes, weights in [0, 1]);
    ``num_identity``: identity modes used (default all the model has); ``distances_cm``: the pair rejection
    distance, shrinking geometrically from the first to the second value over the iterations.
    """
    if expression_mode not in EXPRESSION_MODES:
        raise ValueError(f"expression_mode must be one of {EXPRESSION_MODES}, got {expression_mode!r}")
    num_identity = model.identity_basis.shape[0] if num_identity is None else num_identity
    skin = model.skin_vertex_mask.numpy()
    id_basis = model.identity_basis[:num_identity][:, skin].double().numpy()  # (N, Vs, 3)
    if expression_mode == "none":
        ex_basis = np.zeros((0, int(skin.sum()), 3))
    else:
        basis = model.blendshapes if expression_mode == "blendshapes" else model.expression_basis
        ex_basis = basis[:, skin].double().numpy()  # (K, Vs, 3)
    bases = np.concatenate([id_basis, ex_basis])  # (N + K, Vs, 3)
    lower = np.concatenate([np.full(num_identity, -np.inf), np.zeros(len(ex_basis))])  # used for blendshapes only
    upper = np.concatenate([np.full(num_identity, np.inf), np.ones(len(ex_basis))])
    mean = model.neutral[skin].double().numpy()  # (Vs, 3)
    points, normals = sample_surface(scan, np.flatnonzero(scan.face_triangles.numpy()))
    tree = cKDTree(points)

    jaw_free = np.arange(17, 68)
    lmk_model = model.neutral[model.landmark_indices[jaw_free]].double().numpy()
    scale, rotation, translation = umeyama(lmk_model, scan.landmarks[jaw_free].double().numpy())
    coeffs = np.zeros(len(bases))
    rms, count = float("nan"), 0
    for it in range(iterations):
        shape = mean + np.tensordot(coeffs, bases, 1)  # (Vs, 3) model frame
        placed = scale * shape @ rotation.T + translation
        limit = distances_cm[0] * (distances_cm[1] / distances_cm[0]) ** (it / max(iterations - 1, 1))
        dist, idx = tree.query(placed, distance_upper_bound=limit)
        keep = np.isfinite(dist)
        count = int(keep.sum())
        if count < 100:
            raise ValueError(f"the model and the scan overlap in only {count} vertices; check the start pose")
        p, n = points[idx[keep]], normals[idx[keep]]
        scale, rotation, translation = umeyama(shape[keep], p)
        if len(bases) == 0:
            continue
        coeffs = _solve_coefficients(np.ascontiguousarray(bases[:, keep]) @ (scale * rotation.T),
                                     p - scale * mean[keep] @ rotation.T - translation, n, prior * count,
                                     (lower, upper) if expression_mode == "blendshapes" else None)
    shape = mean + np.tensordot(coeffs, bases, 1)
    placed = scale * shape @ rotation.T + translation
    dist, idx = tree.query(placed, distance_upper_bound=distances_cm[1])
    keep = np.isfinite(dist)
    rms = float(np.sqrt(np.mean(((placed[keep] - points[idx[keep]]) * normals[idx[keep]]).sum(1) ** 2)))
    logger.info("floor fit (%s, %d identity modes): %d pairs, RMS %.3f cm", expression_mode, num_identity,
                int(keep.sum()), rms)
    return FloorFit(scale=scale, rotation=rotation, translation=translation, identity=coeffs[:num_identity],
                    expression=coeffs[num_identity:], expression_mode=expression_mode, rms_cm=rms,
                    pairs=int(keep.sum()))
