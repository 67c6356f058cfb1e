"""Expression and pose error of cross reenactment (paper Sec. 5.5, Table 3 "Expression/Pose").

The paper compares "the extracted facial blendshapes and head poses from a
3DMM model" of the generated and the driving frames without giving a formula.
We read it as follows. Both clips are fitted with the project's tracker
(:func:`jointportrait.tracking.track_clip`: one identity per clip, 25
expression coefficients and a head rotation per frame), each with its own
identity, so the driver's face shape is not counted as expression. For the
``N`` frames where both fits are usable:

* expression error: mean absolute difference of the 25 expression
  coefficients, ``E = 1/(25 N) sum_t sum_k |e^gen_{t,k} - e^drv_{t,k}|``;
* pose error: mean geodesic angle between the fitted head rotations, in
  degrees, ``P = 1/N sum_t angle(R^gen_t, R^drv_t)`` with
  ``angle(R1, R2) = arccos((tr(R1^T R2) - 1) / 2)``, the rotation angle of
  ``R1^T R2`` (0 to 180 degrees). It is computed as
  ``atan2(|w| / 2, (tr(R) - 1) / 2)`` with ``R = R1^T R2`` and ``w`` the
  vector of ``R - R^T`` (``2 sin(theta)`` times the axis), which stays
  accurate near 0 and 180 degrees where ``arccos`` loses digits.

Head rotations are the tracker's camera-space rotations, so a driver who
turns 10 degrees to the left and a generated head that turns 10 degrees to
the left agree whatever their framing.

:class:`FacialMotionFitter` is the whole measurement of one clip (landmarks
detected, followed and smoothed, then the tracker fit), shared by
``jointportrait evaluate video`` and the demo. :func:`synthetic_facial_motion`
gives the true expression and head rotation of a clip of
``jointportrait synth --video`` in the tracker's convention, so the
measurement itself can be scored (the tracker's error against the truth).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from jointportrait.face_models import FaceModel
from jointportrait.faces import SmoothingConfig
from jointportrait.geometry.cameras import MODEL_TO_OPENCV
from jointportrait.tracking.landmarks import detect_clip_landmarks
from jointportrait.tracking.params import axis_angle_to_matrix
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import track_clip

logger = logging.getLogger(__name__)


def rotation_geodesic_degrees(r1: Any, r2: Any) -> np.ndarray:
    """Angles ``(N,)`` in degrees between rotation matrices ``r1``, ``r2`` ``(N, 3, 3)`` (module docstring)."""
    a, b = np.asarray(r1, np.float64), np.asarray(r2, np.float64)
    if a.shape != b.shape or a.shape[-2:] != (3, 3):
        raise ValueError(f"need two stacks of 3x3 rotations of one shape, got {a.shape} and {b.shape}")
    rel = np.swapaxes(a, -1, -2) @ b  # (N, 3, 3) = R1^T R2
    skew = rel - np.swapaxes(rel, -1, -2)
    w = np.stack([skew[..., 2, 1], skew[..., 0, 2], skew[..., 1, 0]], axis=-1)  # 2 sin(theta) axis
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arctan2(np.linalg.norm(w, axis=-1) / 2.0, cos))


def axis_angle_matrices(rotation: Any) -> np.ndarray:
    """Axis-angle vectors ``(N, 3)`` (the tracker's ``rotation``) -> matrices ``(N, 3, 3)`` float64."""
    r = torch.as_tensor(np.asarray(rotation, np.float64)).reshape(-1, 3)
    return axis_angle_to_matrix(r).numpy()


def expression_error(expression: Any, driving: Any) -> float:
    """Mean absolute difference of expression coefficients ``(N, K)`` and ``(N, K)``."""
    a, b = np.asarray(expression, np.float64), np.asarray(driving, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"need two (N, K) coefficient arrays of one shape, got {a.shape} and {b.shape}")
    return float(np.abs(a - b).mean())


def pose_error(rotation: Any, driving: Any) -> float:
    """Mean geodesic angle in degrees between axis-angle rotations ``(N, 3)`` and ``(N, 3)``."""
    return float(rotation_geodesic_degrees(axis_angle_matrices(rotation), axis_angle_matrices(driving)).mean())


@dataclass
class FacialMotion:
    """Per-frame tracker fit of a clip of ``F`` frames: ``expression`` ``(F, 25)`` and ``rotation`` ``(F, 3)``
    (axis-angle), NaN on frames without a usable fit; ``usable`` ``(F,)``; ``diverged``: why the whole fit
    was dropped, or None."""

    expression: np.ndarray
    rotation: np.ndarray
    usable: np.ndarray
    diverged: str | None = None


def fit_facial_motion(model: FaceModel, frames: np.ndarray, landmarks: np.ndarray,
                      config: TrackerConfig | None = None) -> FacialMotion:
    """Track frames ``(F, H, W, 3)`` uint8 with landmarks ``(F, 68, 2)`` (all-NaN rows: no face there, those
    frames are left out of the fit) and return their expression and head rotation."""
    num = frames.shape[0]
    found = np.isfinite(landmarks).all(axis=(1, 2))
    expression = np.full((num, model.expression_basis.shape[0]), np.nan)
    rotation = np.full((num, 3), np.nan)
    if not found.any():
        return FacialMotion(expression, rotation, found, "no face found in any frame")
    result = track_clip(model, frames[found], landmarks[found], config)
    if result.diverged is not None:
        logger.warning("facial motion fit dropped: %s", result.diverged)
        return FacialMotion(expression, rotation, np.zeros(num, bool), result.diverged)
    expression[found] = result.params.expression.double().numpy()
    rotation[found] = result.params.rotation.double().numpy()
    return FacialMotion(expression, rotation, found)


class FacialMotionFitter:
    """Expression and head rotation of clips: landmarks detected, followed and smoothed
    (:func:`jointportrait.tracking.landmarks.detect_clip_landmarks`), then one tracker fit per clip.

    ``detector``: a :class:`jointportrait.faces.FaceDetector` (the ``faces`` extra); ``smoothing``: the One Euro
    filter on the landmark tracks (False: raw detections); ``face_index``: which face to follow.
    """

    def __init__(self, model: FaceModel, detector, tracker: TrackerConfig | None = None, smoothing: bool = True,
                 face_index: int = 0) -> None:
        self.model, self.detector, self.tracker = model, detector, tracker
        self.smoothing, self.face_index = smoothing, face_index

    def __call__(self, frames: np.ndarray, fps: float) -> FacialMotion:
        """Fit frames ``(F, H, W, 3)`` uint8 shown at ``fps`` (the smoothing filter's time base)."""
        landmarks = detect_clip_landmarks(frames, fps, self.detector, face_index=self.face_index,
                                          smoothing=SmoothingConfig() if self.smoothing else None)
        return fit_facial_motion(self.model, frames, landmarks.landmarks, self.tracker)


def synthetic_facial_motion(model: FaceModel, params: list[dict]) -> FacialMotion:
    """The true motion of a synthetic clip from its frames' stored parameters (``params/*.json`` of
    ``jointportrait synth``), in the tracker's terms: the PCA expression the renderer projected its blendshape
    weights onto, and the camera-space rotation ``R`` with ``v_cam = R @ MODEL_TO_OPENCV @ v_model + t``
    (:mod:`jointportrait.tracking.params`). The renderer places the head in world space
    (``rotation_matrix``) and looks at it through ``world_to_camera``, so ``R = R_wc @ R_head @ MODEL_TO_OPENCV``
    (the flip is its own inverse)."""
    from scipy.spatial.transform import Rotation

    if not params:
        raise ValueError("need the parameters of at least one frame")
    names = {p.get("face_model") for p in params}
    if names != {model.name}:
        raise ValueError(f"the clip was rendered with {sorted(map(str, names))}, not with {model.name}: "
                         "its expression coefficients are in another basis")
    flip = MODEL_TO_OPENCV.double().numpy()
    camera = np.stack([np.asarray(p["world_to_camera"], np.float64)[:3, :3] @ np.asarray(p["rotation_matrix"])
                       @ flip for p in params])
    expression = np.asarray([p["expression_pca"] for p in params], np.float64)
    return FacialMotion(expression, Rotation.from_matrix(camera).as_rotvec(), np.ones(len(params), bool))


def held_still(motion: FacialMotion, frame: int = 0) -> FacialMotion:
    """The motion of a clip that never leaves ``frame`` of ``motion``: the no-motion baseline of a self
    reenactment whose reference is that frame (without fitting a still clip; its own fit would differ from the
    driver's fit of that frame only by the tracker's noise)."""
    count = motion.usable.shape[0]
    usable = np.full(count, bool(motion.usable[frame]))
    return FacialMotion(np.repeat(motion.expression[frame : frame + 1], count, 0),
                        np.repeat(motion.rotation[frame : frame + 1], count, 0), usable, motion.diverged)


@dataclass(frozen=True)
class MotionErrors:
    """Expression and pose error over ``frames`` compared frames (of ``total``)."""

    expression: float
    pose_degrees: float
    frames: int
    total: int


def motion_errors(generated: FacialMotion, driving: FacialMotion) -> MotionErrors | None:
    """Errors over the frames where both fits are usable; None when there is no such frame."""
    if generated.usable.shape != driving.usable.shape:
        raise ValueError(f"clips differ in length: {generated.usable.shape[0]} vs {driving.usable.shape[0]} frames")
    both = generated.usable & driving.usable
    if not both.any():
        return None
    return MotionErrors(expression_error(generated.expression[both], driving.expression[both]),
                        pose_error(generated.rotation[both], driving.rotation[both]), int(both.sum()),
                        int(both.shape[0]))
