"""The tracker recovers depth on a clip of ``jointportrait synth --video`` (paper Sec. 5.1, suppl. 7.3).

Landmarks are the true landmark vertices projected with the clip's stored
parameters, plus 1.5 px (at 256 px) Gaussian noise; depth is compared after
a least-squares scale and shift over the true skin mask. The full tracker is
compared with the same fit without the photometric stage and without the
shared identity. Here the landmarks are exact up to noise, so the comparison
uses the photometric settings that trust them (``LANDMARK_TRUSTING``, the
defaults before issue 19): AbsRel 0.0025 full, 0.0027 without the photometric
stage (procedural head, 8 frames at 96 px). The defaults let the photometric
stage move the pose far from the landmarks, which real detections need (the
real-scan test, docs/TRACKING.md) and which costs accuracy on the model's own
renders: 0.0044 here, still within the bound.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointportrait.face_models import load_face_model
from jointportrait.tracking import TrackerConfig, track_clip
from jointportrait.tracking.evaluation import evaluate_track, load_synthetic_clip

ABS_REL_BOUND = 0.007
LANDMARK_TRUSTING = dict(photometric_pose_rate=1.0, photometric_landmark_scale=0.1, photometric_steps=(40, 30, 20))
CLEAN_LANDMARK_BOUND_PX = 0.5  # at 96 px; the noise itself is 0.56 px per coordinate


@pytest.fixture(scope="module")
def clip(synthetic_video):
    return load_synthetic_clip(synthetic_video, load_face_model("procedural"), noise_px=1.5, seed=0)


@pytest.fixture(scope="module")
def fits(clip):
    model = load_face_model("procedural")
    configs = {"default": TrackerConfig(), "full": TrackerConfig(**LANDMARK_TRUSTING),
               "no_photometric": TrackerConfig(photometric=False),
               "per_frame_identity": TrackerConfig(shared_identity=False, **LANDMARK_TRUSTING)}
    return {name: track_clip(model, clip.frames, clip.landmarks, cfg) for name, cfg in configs.items()}


@pytest.mark.parametrize("name", ["default", "full"])
def test_tracked_depth_matches_truth(clip, fits, name):
    result = fits[name]
    assert result.diverged is None
    abs_rel, clean_error = evaluate_track(clip, result)
    assert abs_rel < ABS_REL_BOUND
    assert clean_error < CLEAN_LANDMARK_BOUND_PX
    inter = (result.skin & clip.skin).sum()
    assert inter / (result.skin | clip.skin).sum() > 0.8  # the fitted skin covers the true skin
    assert result.depth.dtype == np.float32 and np.all(result.depth[~result.mask] == 0)


def test_photometric_stage_and_shared_identity_help(clip, fits):
    full, _ = evaluate_track(clip, fits["full"])
    no_photo, _ = evaluate_track(clip, fits["no_photometric"])
    per_frame, _ = evaluate_track(clip, fits["per_frame_identity"])
    assert full < no_photo
    assert full < per_frame
    assert fits["per_frame_identity"].params.identity.shape == (clip.frames.shape[0], 50)
    assert fits["full"].params.identity.shape == (1, 50)
