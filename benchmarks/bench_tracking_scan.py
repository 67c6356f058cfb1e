"""Face tracker accuracy on a REAL face with exact depth, next to the face model's floor (paper Sec. 5.1).

The real scan of :mod:`jointportrait.tracking.scan` (menpo3d's ``james``,
fetched from PyPI) is rendered in a 12-frame 256 x 256 clip (yaw -20..20
degrees, pitch one period of +-10 degrees, 25 degree field of view, 60 cm),
landmarks are DETECTED with dlib, and the tracked depth is compared with the
true depth over the scan's face region (aligned AbsRel: least-squares scale
and shift, mean |a - g| / g, per frame). Scale rows: a constant depth, the
neutral model placed on the scan by ICP at the true poses, and the floor (the
model's identity and expression fitted to the true 3-D geometry). The
"oracle landmarks" rows track from the floor model's own landmark vertices
projected at the true poses: what the tracker reaches when the detector
agrees with the model's landmark definitions.

Every tracker row that changes the fit is also run on a 12-frame 256 x 256
clip rendered from the ICT model itself (``jointportrait synth --video``,
landmarks = projected landmark vertices + 1.5 px noise), so that a gain on the
real face is not paid for on the model's own renders. Writes section
``tracking_scan`` of BENCHMARKS.md: ``python benchmarks/run.py tracking_scan``
(about an hour on one busy CPU core).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.report import update_section
from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.face_models import load_face_model
from jointportrait.tracking import TrackerConfig, track_clip
from jointportrait.tracking.evaluation import evaluate_track, load_synthetic_clip
from jointportrait.tracking.floor import fit_model_to_scan
from jointportrait.tracking.scan import fetch_scan, load_scan
from jointportrait.tracking.scan_benchmark import (
    detect_landmarks,
    model_landmarks_at_clip_poses,
    reference_errors,
    track_scan_clip,
)
from jointportrait.tracking.scan_clip import render_scan_clip, sweep_poses

FRAMES, SIZE = 12, 256
# the defaults of commit fcfab31, before issue 19's changes
BEFORE = TrackerConfig(photometric_pose_rate=1.0, photometric_landmark_scale=0.1, photometric_steps=(40, 30, 20))
# (row, landmarks: "single" dlib prediction per frame / "boxes" averaged over 16 boxes / "oracle", config, ICT clip too)
VARIANTS = [
    ("before: one dlib prediction per frame, landmark stages only", "single", replace(BEFORE, photometric=False),
     True),
    ("before: full tracker", "single", BEFORE, True),
    ("+ landmarks averaged over 16 jittered boxes, landmark stages only", "boxes", replace(BEFORE, photometric=False),
     False),
    ("+ landmarks averaged over 16 jittered boxes, full tracker", "boxes", BEFORE, False),
    ("+ photometric pose steps x50, 120/90/60 steps, landmark weight 0.02 (default now)", "boxes", TrackerConfig(),
     True),
    ("oracle landmarks, landmark stages only", "oracle", TrackerConfig(photometric=False), False),
]


def ict_clip(model):
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), model, SynthConfig(subjects=1, frames_per_subject=FRAMES, size=SIZE, video=True,
                                                    clip_length=FRAMES, seed=0))
        return load_synthetic_clip(tmp, model, noise_px=1.5, seed=0)


def track_ict(model, clip, config: TrackerConfig) -> tuple[float, float]:
    start = time.perf_counter()
    result = track_clip(model, clip.frames, clip.landmarks, config)
    return evaluate_track(clip, result)[0], (time.perf_counter() - start) / FRAMES


def main() -> None:
    torch.set_num_threads(1)
    model = load_face_model("ict")
    scan = load_scan(fetch_scan())
    clip = render_scan_clip(scan, sweep_poses(FRAMES), size=SIZE)
    floor_fit = fit_model_to_scan(model, scan, "pca")
    landmarks = {"single": detect_landmarks(clip.frames, box_samples=1), "boxes": detect_landmarks(clip.frames),
                 "oracle": model_landmarks_at_clip_poses(model, floor_fit.vertices(model), clip)}
    synthetic = ict_clip(model)
    refs = reference_errors(model, scan, clip, floor_modes=("pca", "blendshapes"))
    floor = refs["floor (pca)"].mean
    rows = [(name, e.mean, e.worst, "", "", "", "") for name, e in refs.items()]
    for name, kind, config, on_ict in VARIANTS:
        run = track_scan_clip(model, clip, landmarks[kind], config)
        ict_abs_rel, ict_seconds = track_ict(model, synthetic, config) if on_ict else (None, None)
        rows.append((name, run.errors.mean, run.errors.worst, f"{run.seconds_per_frame:.2f}",
                     f"{run.landmark_error_px:.2f}", "" if ict_abs_rel is None else f"{ict_abs_rel:.4f}",
                     "" if ict_seconds is None else f"{ict_seconds:.2f}"))
        print(f"{name}: AbsRel {run.errors.mean:.4f} (worst {run.errors.worst:.4f}), "
              f"{run.seconds_per_frame:.2f} s/frame; ICT clip {ict_abs_rel}", flush=True)
    table = "\n".join(f"| {n} | {m:.4f} | {w:.4f} | {m / floor:.2f} | {s} | {lm} | {ia} | {isec} |"
                      for n, m, w, s, lm, ia, isec in rows)
    update_section("tracking_scan", f"""## Face tracking on a real face (`benchmarks/bench_tracking_scan.py`)

`python benchmarks/run.py tracking_scan`. {FRAMES}-frame {SIZE}x{SIZE} clip of a real textured face scan
({scan.name}, PyPI, BSD) with exact depth, yaw -20..20 degrees and pitch +-10 degrees; landmarks detected
with dlib; face model {model.name}. Aligned AbsRel over the scan's face region (mean and worst frame);
"x floor" = mean / floor (pca). The floor rows fit the model's 50 identity modes and its 25 PCA expression
components (or all 53 blendshapes) directly to the true 3-D geometry (ICP); the neutral row places the mean
face the same way. "ICT clip": the same tracker on a {FRAMES}-frame {SIZE} px clip rendered from the ICT model
(landmarks = projected landmark vertices + 1.5 px noise; aligned AbsRel over the true skin), for regressions.
Seconds per frame: one thread on a shared, busy 2-core machine (compare within a column of one run only).

| row | aligned AbsRel | worst frame | x floor | s / frame | landmark error (px) | ICT clip AbsRel | ICT s / frame |
| --- | --- | --- | --- | --- | --- | --- | --- |
{table}
""")


if __name__ == "__main__":
    main()
