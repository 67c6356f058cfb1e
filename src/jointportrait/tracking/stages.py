"""The stages of the monocular face tracker (paper Sec. 5.1, supplementary 7.3).

In the style of the public face trackers (Face2Face, DECA/MICA-style
optimisers, metrical-tracker):

1. :func:`rigid_init` - closed-form head pose per frame from the landmarks and
   the mean face (EPnP + Levenberg-Marquardt in OpenCV) at the prior focal
   length. Landmarks hardly constrain the focal length (the landmark energy
   of a clip is flat within 1 % between 10 and 40 degrees field of view), so
   it starts at ``fov_degrees`` and is held near it by a log-normal prior.
2. :func:`fit_landmarks` - L-BFGS on the landmark energy: first rigid pose and
   focal only, then also identity (one code per clip) and expression, with
   Gaussian priors and temporal smoothness on pose and expression.
3. :func:`fit_photometric` - Adam on the photometric energy (albedo x SH
   shading of the rasterised skin against the frame, linear RGB) plus the
   landmark energy, coarse to fine over an image pyramid; albedo and lighting
   are shared by the clip.

All energies are normalised by the number of landmark observations, so the
weights do not depend on the clip length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as nnf

from jointportrait.appearance.sh_lighting import irradiance
from jointportrait.face_models import FaceModel
from jointportrait.geometry.cameras import MODEL_TO_OPENCV, PerspectiveCamera, focal_from_fov
from jointportrait.render import interpolate, rasterize
from jointportrait.tracking.landmarks import JAW, NUM_LANDMARKS
from jointportrait.tracking.losses import (
    edge_smoothness,
    gaussian_prior,
    landmark_energy,
    mesh_edges,
    photometric_error,
    temporal_smoothness,
)
from jointportrait.tracking.params import (
    TrackParams,
    camera_vertices,
    landmark_points,
    project,
)

logger = logging.getLogger(__name__)

# Adam step sizes of the photometric stage relative to ``learning_rate``: per unit of each parameter
PHOTOMETRIC_RATES = {"identity": 2.0, "expression": 2.0, "rotation": 0.02, "translation": 1.0, "log_focal": 0.02,
                     "albedo": 1.0, "sh": 1.0}
POSE = ("rotation", "translation")
Progress = Callable[[str, int], object]  # (description, total) -> object with update(n) and close()


@dataclass
class TrackerConfig:
    """Weights, schedules and switches of the tracker (the ablations turn stages off)."""

    shared_identity: bool = True
    photometric: bool = True
    fov_degrees: float = 25.0  # prior horizontal field of view of the longest image side
    focal_prior: float = 10.0  # weight of (log f - log f_prior)^2
    rigid_steps: int = 30
    shape_steps: int = 150
    photometric_steps: tuple[int, ...] = (120, 90, 60)  # 40/30/20 before issue 19
    pyramid: tuple[float, ...] = (0.25, 0.5, 1.0)  # of the photometric working size
    photometric_size: int = 256  # longest side of the finest pyramid level (frames are not upsampled)
    landmark_sigma: float = 1.5  # landmark noise, pixels at 256 px
    jaw_weight: float = 0.5  # contour landmarks slide along the silhouette in real detections
    identity_prior: float = 1.0
    expression_prior: float = 1.0
    pose_smoothness: float = 50.0  # per frame step, rad^2 and (cm / 10)^2
    expression_smoothness: float = 2.0
    photometric_weight: float = 10000.0
    photometric_landmark_scale: float = 0.02  # landmark term's weight in the photometric stage, relative (was 0.1)
    albedo_smoothness: float = 2000.0
    learning_rate: float = 0.01
    # multiplies PHOTOMETRIC_RATES of rotation and translation; at 1 (before issue 19) Adam could turn the head by
    # about 1 degree in the whole stage, too little to correct the pose errors of real detections (5-25 degrees)
    photometric_pose_rate: float = 50.0
    diverged_error: float = 0.15  # median landmark error / inter-ocular distance that counts as diverged


def landmark_weights(config: TrackerConfig, device: torch.device | None = None) -> torch.Tensor:
    weights = torch.ones(NUM_LANDMARKS, device=device)
    weights[JAW] = config.jaw_weight
    return weights


def prior_focal(height: int, width: int, config: TrackerConfig) -> float:
    return focal_from_fov(max(height, width), config.fov_degrees)


def rigid_init(model: FaceModel, landmarks: np.ndarray, height: int, width: int,
               focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``(F, 3)`` axis-angle and translation ``(F, 3)`` of landmarks ``(F, 68, 2)``: the mean face's
    landmarks posed by EPnP, then refined by Levenberg-Marquardt on the reprojection error."""
    obj = (model.neutral[model.landmark_indices].cpu() @ MODEL_TO_OPENCV.T).double().numpy()  # (68, 3)
    K = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])
    rots, trans = [], []
    for pts in landmarks.astype(np.float64):
        ok, rvec, tvec = cv2.solvePnP(obj, pts, K, None, flags=cv2.SOLVEPNP_EPNP)
        if not ok or tvec[2, 0] <= 0:
            # straight in front of the camera, at the distance the face's width implies
            tvec = np.array([[0.0], [0.0], [focal * 10.0 / max(np.ptp(pts[:, 0]), 1.0)]])
            rvec = np.zeros((3, 1))
        rvec, tvec = cv2.solvePnPRefineLM(obj, pts, K, None, rvec, tvec)
        rots.append(rvec[:, 0])
        trans.append(tvec[:, 0])
    return np.stack(rots), np.stack(trans)


def _landmark_terms(model: FaceModel, params: TrackParams, landmarks: torch.Tensor, weights: torch.Tensor,
                    height: int, width: int, config: TrackerConfig, landmark_scale: float = 1.0) -> torch.Tensor:
    """The landmark (times ``landmark_scale``), prior and smoothness energy, normalised by the number of landmark
    observations."""
    unit = max(height, width) / 256.0
    pred = project(landmark_points(model, params), params.intrinsics(height, width))  # (F, 68, 2)
    energy = landmark_scale * landmark_energy(pred / unit, landmarks / unit, weights, config.landmark_sigma)
    energy = energy + config.identity_prior * gaussian_prior(params.identity)
    energy = energy + config.expression_prior * gaussian_prior(params.expression)
    energy = energy + config.pose_smoothness * (temporal_smoothness(params.rotation)
                                                + temporal_smoothness(params.translation / 10.0))
    energy = energy + config.expression_smoothness * temporal_smoothness(params.expression)
    energy = energy + config.focal_prior * (params.log_focal[0] - math.log(prior_focal(height, width, config))) ** 2
    return energy / (params.num_frames * NUM_LANDMARKS)


def fit_landmarks(model: FaceModel, params: TrackParams, landmarks: torch.Tensor, height: int, width: int,
                  config: TrackerConfig, *, shape: bool, steps: int, progress: Progress | None = None) -> float:
    """L-BFGS on the landmark energy over pose (and identity + expression when ``shape``), in float64.

    One L-BFGS run of at most ``steps`` iterations (strong Wolfe line search). Float64 matters: in float32
    the energy's changes near a minimum fall below its rounding, the line search fails, and L-BFGS stops
    moving (the energy then stalled at its start value on real faces).

    The focal length stays at its prior here: it is stiff against the translation (a 15 % change of
    focal at a fixed distance rescales the whole face), which stalls the line search; the
    photometric stage refines it.

    Updates ``params`` in place; returns the final energy.
    """
    names = ["rotation", "translation"] + (["identity", "expression"] if shape else [])
    work = TrackParams(**{k: v.detach().double() if k != "albedo" else v for k, v in params.tensors().items()})
    variables = [getattr(work, n).requires_grad_(True) for n in names]
    optimizer = torch.optim.LBFGS(variables, lr=1.0, max_iter=steps, max_eval=2 * steps, history_size=20,
                                  tolerance_grad=1e-10, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    weights = landmark_weights(config, landmarks.device).double()
    target = landmarks.double()
    bar = progress(f"{'shape' if shape else 'rigid'} (landmarks)", 2 * steps) if progress else None

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        energy = _landmark_terms(model, work, target, weights, height, width, config)
        energy.backward()
        if bar is not None:
            bar.update(1)
        return energy

    optimizer.step(closure)
    if bar is not None:
        bar.close()
    with torch.no_grad():
        for n in names:
            getattr(params, n).copy_(getattr(work, n).detach())
        return float(_landmark_terms(model, work, target, weights, height, width, config))


def render_shading(model: FaceModel, params: TrackParams, triangles: torch.Tensor, K: torch.Tensor, height: int,
                   width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rendered linear RGB ``(F, H, W, 3)`` (albedo x SH irradiance) of ``triangles`` and its coverage mask."""
    verts = camera_vertices(model, params)  # (F, V, 3)
    camera = PerspectiveCamera(K[None].expand(params.num_frames, 3, 3))
    frags = rasterize(verts, triangles, camera, height, width)
    albedo = interpolate(params.albedo[None].expand(params.num_frames, -1, -1), frags)  # (F, H, W, 3)
    return albedo * irradiance(frags.normals, params.sh), frags.mask


@torch.no_grad()
def init_albedo(model: FaceModel, params: TrackParams, triangles: torch.Tensor, frames: torch.Tensor,
                K: torch.Tensor) -> None:
    """Per-vertex albedo = mean over frames of the colour / irradiance under the current light, splatted to
    the vertices with barycentric weights; vertices never seen get the mean skin colour."""
    num, height, width, _ = frames.shape
    verts = camera_vertices(model, params)
    frags = rasterize(verts, triangles, PerspectiveCamera(K[None].expand(num, 3, 3)), height, width)
    shade = irradiance(frags.normals, params.sh).clamp_min(0.05)  # (F, H, W, 3)
    colour = (frames / shade).reshape(-1, 3)[frags.pixel_index]  # (P, 3)
    corners = triangles[frags.pixel_triangle]  # (P, 3)
    w = frags.pixel_barycentrics.clamp_min(0)  # (P, 3)
    total = torch.zeros(model.num_vertices, 3, device=frames.device).index_add_(0, corners.reshape(-1),
                                                          (w[..., None] * colour[:, None]).reshape(-1, 3))
    weight = torch.zeros(model.num_vertices, device=frames.device).index_add_(0, corners.reshape(-1), w.reshape(-1))
    seen = weight > 1e-3
    albedo = torch.where(seen[:, None], total / weight.clamp_min(1e-3)[:, None], colour.mean(0))
    params.albedo.copy_(albedo.clamp(0.0, 1.0))


def pyramid_levels(height: int, width: int, config: TrackerConfig) -> list[tuple[int, int, float]]:
    """(height, width, scale) of each pyramid level, coarse to fine; never above the frame size."""
    top = min(1.0, config.photometric_size / max(height, width))
    levels = []
    for factor in config.pyramid:
        w = max(8, round(width * top * factor))
        levels.append((max(8, round(height * w / width)), w, w / width))
    return levels


def fit_photometric(model: FaceModel, params: TrackParams, frames: torch.Tensor, landmarks: torch.Tensor,
                    config: TrackerConfig, progress: Progress | None = None) -> list[float]:
    """Coarse-to-fine photometric refinement of every parameter; ``frames`` ``(F, H, W, 3)`` linear RGB.

    Returns the photometric error at the end of each level.
    """
    num, height, width, _ = frames.shape
    triangles = model.triangles[model.skin_triangle_mask]  # (T, 3) face skin only: hair, eyes are not modelled
    edges = mesh_edges(triangles)
    weights = landmark_weights(config, frames.device)
    levels = pyramid_levels(height, width, config)
    finest = levels[-1]
    target_fine = nnf.interpolate(frames.permute(0, 3, 1, 2), size=finest[:2], mode="area").permute(0, 2, 3, 1)
    init_albedo(model, params, triangles, target_fine, params.intrinsics(height, width, finest[2]))

    errors = []
    for (h, w, scale), steps in zip(levels, config.photometric_steps, strict=True):
        target = nnf.interpolate(frames.permute(0, 3, 1, 2), size=(h, w), mode="area").permute(0, 2, 3, 1)
        groups = [{"params": [getattr(params, n).requires_grad_(True)],
                   "lr": config.learning_rate * r * (config.photometric_pose_rate if n in POSE else 1.0)}
                  for n, r in PHOTOMETRIC_RATES.items()]
        optimizer = torch.optim.Adam(groups)
        bar = progress(f"photometric {w}x{h}", steps) if progress else None
        error = torch.tensor(float("nan"))
        for _ in range(steps):
            optimizer.zero_grad()
            rendered, mask = render_shading(model, params, triangles, params.intrinsics(height, width, scale), h, w)
            error = photometric_error(rendered, target, mask)
            energy = _landmark_terms(model, params, landmarks, weights, height, width, config,
                                     config.photometric_landmark_scale)
            energy = energy + config.photometric_weight * error / NUM_LANDMARKS
            energy = energy + config.albedo_smoothness * edge_smoothness(params.albedo, edges) / NUM_LANDMARKS
            energy.backward()
            optimizer.step()
            with torch.no_grad():
                params.albedo.clamp_(0.0, 1.0)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        errors.append(float(error.detach()))
        logger.info("photometric level %dx%d: error %.4f", w, h, errors[-1])
    for name in PHOTOMETRIC_RATES:
        getattr(params, name).requires_grad_(False)
    return errors
