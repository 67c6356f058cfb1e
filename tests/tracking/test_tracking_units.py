"""Pure pieces of the tracker checked against independent formulas (paper Sec. 5.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from jointportrait.appearance.sh_lighting import irradiance
from jointportrait.errors import InputError, MissingPathError
from jointportrait.tracking.landmarks import box_averaged_landmarks, interocular_distance, load_landmarks
from jointportrait.tracking.losses import mesh_edges, temporal_smoothness
from jointportrait.tracking.params import TrackParams, axis_angle_to_matrix, project


def test_axis_angle_matches_scipy():
    vectors = np.array([[0.0, 0.0, 0.0], [1e-6, -2e-6, 0.0], [0.3, -0.2, 0.1], [0.0, 2.5, 0.0]])
    ours = axis_angle_to_matrix(torch.tensor(vectors, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(vectors).as_matrix(), atol=1e-9)


def test_pyramid_intrinsics_follow_area_resampling():
    # a pixel centre x of the full frame lies at (x + 0.5) * s - 0.5 in a frame resampled by s
    params = TrackParams(identity=torch.zeros(1, 50), expression=torch.zeros(1, 25), rotation=torch.zeros(1, 3),
                         translation=torch.zeros(1, 3), log_focal=torch.tensor([np.log(300.0)]),
                         albedo=torch.zeros(1, 3), sh=torch.zeros(9, 3))
    point = torch.tensor([[[2.0, -1.5, 50.0]]])
    full = project(point, params.intrinsics(120, 160))[0, 0]
    half = project(point, params.intrinsics(120, 160, 0.25))[0, 0]
    np.testing.assert_allclose(half.numpy(), ((full + 0.5) * 0.25 - 0.5).numpy(), atol=1e-4)
    # centre pixel of a 160x120 frame: (79.5, 59.5); focal 300 px
    np.testing.assert_allclose(full.numpy(), [79.5 + 300 * 2 / 50, 59.5 - 300 * 1.5 / 50], atol=1e-4)


def test_irradiance_of_uniform_light_and_smoothness():
    sh = torch.zeros(9, 3)
    sh[0] = 1.0 / (np.pi * 0.282095)
    normals = torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
    np.testing.assert_allclose(irradiance(normals, sh).numpy(), 1.0, rtol=1e-5)
    assert float(temporal_smoothness(torch.tensor([[0.0], [1.0], [3.0]]))) == pytest.approx(1.0 + 4.0)
    assert mesh_edges(torch.tensor([[0, 1, 2], [2, 1, 3]])).tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]


def test_landmark_files(tmp_path):
    points = np.random.default_rng(0).uniform(0, 100, size=(3, 68, 2))
    np.save(tmp_path / "lm.npy", points)
    np.testing.assert_allclose(load_landmarks(tmp_path / "lm.npy", num_frames=3), points, rtol=1e-6)
    (tmp_path / "lm.json").write_text(json.dumps({"frames": points.tolist()}))
    np.testing.assert_allclose(load_landmarks(tmp_path / "lm.json"), points, rtol=1e-6)
    (tmp_path / "list.json").write_text(json.dumps(points.tolist()))
    assert load_landmarks(tmp_path / "list.json").shape == (3, 68, 2)
    eyes = np.zeros((1, 68, 2))
    eyes[0, 42:48, 0] = 6.0
    assert interocular_distance(eyes)[0] == pytest.approx(6.0)

    with pytest.raises(InputError, match="4 frames of landmarks|3 frames of landmarks"):
        load_landmarks(tmp_path / "lm.npy", num_frames=4)
    np.save(tmp_path / "bad.npy", points[:, :5])
    with pytest.raises(InputError, match=r"bad.npy: landmarks must have shape \(frames, 68, 2\)"):
        load_landmarks(tmp_path / "bad.npy")
    nan = points.copy()
    nan[2, 7, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(InputError, match="nan.npy: non-finite landmarks in frame 2"):
        load_landmarks(tmp_path / "nan.npy")
    (tmp_path / "lm.txt").write_text("1 2")
    with pytest.raises(InputError, match="lm.txt: landmarks must be a .npy or .json"):
        load_landmarks(tmp_path / "lm.txt")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="broken.json: not a readable landmarks file"):
        load_landmarks(tmp_path / "broken.json")
    with pytest.raises(MissingPathError, match="missing.npy"):
        load_landmarks(tmp_path / "missing.npy")


class _BoxFollowingPredictor:
    """A 68-point predictor whose points follow its box by half the box's offset from the face's true box
    (as a regression cascade started in the box does): averaging over jittered boxes should cancel that."""

    true_box = np.array([40.0, 50.0, 140.0, 150.0])

    def __init__(self) -> None:
        self.truth = np.random.default_rng(3).uniform(50, 140, (68, 2))
        self.calls = 0

    def landmarks(self, image, box):
        self.calls += 1
        box = np.asarray(box)
        offset = (box[:2] + box[2:]) / 2 - (self.true_box[:2] + self.true_box[2:]) / 2
        return (self.truth + 0.5 * offset).astype(np.float32)


def test_box_averaged_landmarks_cancel_box_dependent_error():
    predictor = _BoxFollowingPredictor()
    image = np.zeros((200, 200, 3), np.uint8)
    off_box = tuple(predictor.true_box + np.array([6.0, -4.0, 6.0, -4.0]))  # the detector's box is 6, -4 px off
    single = box_averaged_landmarks(predictor, image, off_box, samples=1, jitter=0.0)
    np.testing.assert_allclose(single - predictor.truth, np.broadcast_to([3.0, -2.0], (68, 2)), atol=1e-4)
    # zero-mean jitter: the mean of the predictions is the prediction of the mean box, up to sampling noise
    mean = box_averaged_landmarks(predictor, image, tuple(predictor.true_box), samples=400, jitter=0.05, seed=1)
    assert predictor.calls == 401
    assert np.abs(mean - predictor.truth).max() < 0.5 * 0.05 * 100 * 3 / np.sqrt(400) + 1e-6
    again = box_averaged_landmarks(predictor, image, tuple(predictor.true_box), samples=400, jitter=0.05, seed=1)
    np.testing.assert_array_equal(mean, again)  # reproducible from its seed
