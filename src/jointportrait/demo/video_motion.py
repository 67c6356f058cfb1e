"""Expression and pose error in the demo's video part (paper Sec. 5.5, Table 3 "Expression/Pose"; issue 13).

The paper's protocol (:mod:`jointportrait.evaluation.facial_motion`): the generated frames and the driving
frames are each fitted by the tracker, from 68 dlib landmarks, and their 25 expression coefficients and head
rotations are compared frame by frame. In the demo's self reenactment the driving frames are the held-out
clip's ground-truth frames. Two rows make the figures readable:

* **reference held still**: a video that never leaves its reference (the clip's first frame); its error is how
  far the driver moves, the error of an animation that ignores the driving depth;
* **measurement error**: the tracker's fit of the ground-truth frames against the parameters the clip was
  rendered with (:func:`~jointportrait.evaluation.facial_motion.synthetic_facial_motion`), i.e. how well the
  tracker reads expression and pose from frames of this size at all. The generated rows compare two fits, so
  a bias common to both fits cancels there and this row is an upper bound of the noise, not a floor.

The tracker runs its landmark stages only (:data:`DEMO_TRACKER`): the photometric stage costs about 45
CPU-seconds per 8-frame clip at 64 px against 1.2 without it, and a 64 px frame gives it little to refine.
Needs the face detector (the ``faces`` extra); without it the figures are reported as not computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jointportrait.data.manifest import FrameRecord
from jointportrait.data.synth import frame_params
from jointportrait.errors import MissingDependencyError
from jointportrait.evaluation.facial_motion import (
    FacialMotion,
    FacialMotionFitter,
    held_still,
    motion_errors,
    synthetic_facial_motion,
)
from jointportrait.face_models import FaceModel
from jointportrait.tracking.stages import TrackerConfig

DEMO_TRACKER = TrackerConfig(photometric=False)
CLIP_FPS = 25.0  # ``synth --video`` renders at 25 fps (the landmark smoothing's time base)
STILL = "Trivial: reference held still"
MEASUREMENT = "tracker on ground truth vs true parameters"
KEYS = ("expression_error", "pose_error")
PROTOCOL = (  # shown with the table
    "The generated and the ground-truth (driving) frames of each animation fitted by the tracker (dlib's 68 "
    "landmarks, smoothed; landmark stages only; one identity per clip); expression error: mean absolute "
    "difference of the 25 expression coefficients, pose error: mean geodesic angle between the head rotations "
    "in degrees, over the frames where both fits are usable; reference held still: the driver's fit of the "
    "first frame repeated; the tracker's own error: its fit of the ground-truth frames against the parameters "
    "they were rendered with")


@dataclass
class MotionRows:
    """Per-animation expression / pose errors by row name, averaged by :meth:`summary`."""

    rows: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, name: str, generated: FacialMotion, driving: FacialMotion) -> None:
        errors = motion_errors(generated, driving)
        entry = ({"frames": 0} if errors is None else
                 {"expression_error": errors.expression, "pose_error": errors.pose_degrees, "frames": errors.frames})
        self.rows.setdefault(name, []).append(entry | {"total": int(generated.usable.shape[0])})

    def summary(self) -> dict[str, dict]:
        """Per row: the mean errors over the animations that had a frame with both fits usable (None where none
        had), how many animations that was, and the frames compared of all frames."""
        out = {}
        for name, entries in self.rows.items():
            scored = [e for e in entries if e["frames"] > 0]
            out[name] = {key: (float(np.mean([e[key] for e in scored])) if scored else None) for key in KEYS}
            out[name] |= {"animations": len(scored), "of_animations": len(entries),
                          "frames_compared": int(sum(e["frames"] for e in entries)),
                          "frames": int(sum(e["total"] for e in entries))}
        return out


class DemoMotionScorer:
    """Fits clips for the demo's expression and pose error; :meth:`create` returns None and why when the face
    detector is not installed."""

    def __init__(self, face: FaceModel, detector, methods: tuple[str, ...] = ()) -> None:
        self.face = face
        self.fitter = FacialMotionFitter(face, detector, DEMO_TRACKER)
        self.table = MotionRows({name: [] for name in (*methods, STILL, MEASUREMENT)})  # the table's row order

    @classmethod
    def create(cls, face: FaceModel, methods: tuple[str, ...] = ()) -> tuple[DemoMotionScorer | None, str | None]:
        """A scorer whose table lists ``methods`` first, or None and why there is none."""
        from jointportrait.faces import FaceDetector

        try:
            return cls(face, FaceDetector(), methods), None
        except MissingDependencyError as exc:
            return None, str(exc)

    def fit(self, frames: np.ndarray) -> FacialMotion:
        """Frames ``(F, H, W, 3)`` uint8 -> their fitted motion."""
        return self.fitter(frames, CLIP_FPS)

    def add_driver(self, frames: np.ndarray, records: list[FrameRecord]) -> FacialMotion:
        """Fit a held-out clip's ground-truth frames (the driver), score the fit against the clip's true
        parameters (:data:`MEASUREMENT`) and the no-motion baseline (:data:`STILL`); returns the fit."""
        driver = self.fit(frames)
        truth = synthetic_facial_motion(self.face, [frame_params(r) for r in records])
        self.table.add(MEASUREMENT, driver, truth)
        self.table.add(STILL, held_still(driver), driver)
        return driver

    def add_generated(self, name: str, frames: np.ndarray, driver: FacialMotion) -> None:
        self.table.add(name, self.fit(frames), driver)
