"""Square face crops: the FFHQ-style rule worked by hand, crop/paste round trips, intrinsics of a crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointportrait.faces import FaceCrop, crop_square
from jointportrait.geometry.cameras import PerspectiveCamera


def _face(eye_dist: float = 40.0, mouth_drop: float = 50.0, centre=(100.0, 80.0)) -> np.ndarray:
    """Landmarks with both eyes' six points at their centres and the mouth corners level."""
    lmk = np.zeros((68, 2))
    cx, cy = centre
    lmk[36:42] = (cx - eye_dist / 2, cy)
    lmk[42:48] = (cx + eye_dist / 2, cy)
    lmk[48] = (cx - 20, cy + mouth_drop)
    lmk[54] = (cx + 20, cy + mouth_drop)
    return lmk


def test_crop_rule_by_hand():
    # eyes 40 apart -> 160; eye-to-mouth 50 -> 180: side 180, centre 5 px below the eyes
    assert crop_square(_face()) == pytest.approx((100.0, 85.0, 180.0))
    # wide-set eyes: the eye term wins (4.0 * 60 = 240 > 3.6 * 50)
    assert crop_square(_face(eye_dist=60.0))[2] == pytest.approx(240.0)
    assert crop_square(_face(), margin=1.5)[2] == pytest.approx(270.0)
    crop = FaceCrop.from_landmarks(_face(), 300, 400, size=90)
    # box edges x in [10, 190), y in [-5, 175): first pixels 10 + 0.5 and -5 + 0.5 rounded half up
    assert (crop.x0, crop.y0, crop.side, crop.scale) == (11, -4, 180, 0.5)


def test_crop_then_paste_returns_the_frame_inside_and_marks_the_outside():
    rng = np.random.default_rng(0)
    frame = rng.uniform(0, 1, (120, 160)).astype(np.float32)
    frame = np.cumsum(np.cumsum(frame, 0), 1) / 300.0  # smooth, so resampling loses little
    crop = FaceCrop.from_landmarks(_face(eye_dist=20, mouth_drop=25, centre=(40, 30)), 120, 160, size=45)
    assert crop.x0 < 0 and crop.y0 < 0  # the box leaves the frame at the top left
    patch = crop.crop(frame)
    assert patch.shape == (45, 45)
    back = crop.paste(patch)
    covered = crop.mask()
    assert back.shape == frame.shape and np.isnan(back[~covered]).all() and np.isfinite(back[covered]).all()
    assert np.abs(back[covered] - frame[covered]).mean() < 0.01 * frame.max()
    inside = crop.inside
    assert not inside[0, 0] and inside[-1, -1] and inside.mean() < 1.0
    # pasting over an image keeps everything outside the box
    image = np.zeros((120, 160, 3), np.uint8)
    out = crop.paste(np.full((45, 45, 3), 255, np.uint8), frame=image)
    assert out.shape == image.shape and (out[covered] == 255).all() and (out[~covered] == 0).all()


def test_crop_intrinsics_project_points_onto_the_crop():
    crop = FaceCrop.from_landmarks(_face(), 300, 400, size=256)
    K = np.array([[500.0, 0.0, 199.5], [0.0, 500.0, 149.5], [0.0, 0.0, 1.0]])
    points = np.array([[3.0, -2.0, 60.0], [-5.0, 4.0, 55.0], [0.0, 0.0, 70.0]])
    pts = torch.tensor(points)[None]  # (1, 3, 3)
    frame_px = PerspectiveCamera(torch.tensor(K)[None]).project(pts)[0].numpy()
    crop_px = PerspectiveCamera(torch.tensor(crop.intrinsics(K))[None]).project(pts)[0].numpy()
    np.testing.assert_allclose(crop_px, crop.to_crop(frame_px), atol=1e-4)
    np.testing.assert_allclose(crop.to_frame(crop.to_crop(frame_px)), frame_px, atol=1e-9)
    # the first box pixel spans crop coordinates [-0.5, s - 0.5): its centre maps to 0.5 s - 0.5
    np.testing.assert_allclose(crop.to_crop([crop.x0, crop.y0]), [0.5 * crop.scale - 0.5] * 2)


def test_bad_sizes_are_errors():
    crop = FaceCrop.from_landmarks(_face(), 300, 400, size=64)
    with pytest.raises(ValueError, match="crop was made for 400x300"):
        crop.crop(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="the crop is 64x64"):
        crop.paste(np.zeros((32, 32)))
    with pytest.raises(ValueError, match="margin must be positive"):
        crop_square(_face(), margin=0)


def test_synth_face_crop_frames_follow_the_crop_rule(tmp_path):
    import json

    from jointportrait.data.synth import SynthConfig, write_dataset
    from jointportrait.face_models import load_face_model

    model = load_face_model("procedural")  # fast
    write_dataset(tmp_path / "full", model, SynthConfig(subjects=1, frames_per_subject=2, size=64, seed=3))
    write_dataset(tmp_path / "crop", model, SynthConfig(subjects=1, frames_per_subject=2, size=64, seed=3,
                                                         face_crop=True))
    for f in range(2):
        full = json.loads((tmp_path / "full" / "params" / f"s0000_f000{f}.json").read_text())
        params = json.loads((tmp_path / "crop" / "params" / f"s0000_f000{f}.json").read_text())
        cx, cy, side = crop_square(np.asarray(params["landmarks_2d"]))
        # the rule applied to the crop's own landmarks gives the whole crop, up to the box's rounding to whole
        # pixels of the uncropped view
        tolerance = 64 / crop_square(np.asarray(full["landmarks_2d"]))[2]
        assert abs(cx - 31.5) < tolerance and abs(cy - 31.5) < tolerance and abs(side - 64) < 2 * tolerance
        # same head, same camera placement: the crop only changes the intrinsics
        assert params["translation_cm"] == full["translation_cm"] and params["intrinsics"] != full["intrinsics"]
        crop_depth = np.load(tmp_path / "crop" / "depth" / f"s0000_f000{f}.npy")
        full_depth = np.load(tmp_path / "full" / "depth" / f"s0000_f000{f}.npy")
        assert abs(np.median(crop_depth[crop_depth > 0]) - np.median(full_depth[full_depth > 0])) < 1.0  # cm
