"""Video metrics (Table 3): I3D for FVD, identity similarity through ONNX, per-frame metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointportrait.errors import MissingPathError
from jointportrait.evaluation.fid import frechet_distance_from_features
from jointportrait.evaluation.i3d import InceptionI3d, _same_pad
from jointportrait.evaluation.identity import IdentityEncoder, cosine_similarity
from jointportrait.evaluation.video_metrics import (
    clip_frame_metrics,
    clip_identity_similarity,
    clip_windows,
    covariance_warning,
    fvd,
    fvd_over_windows,
)


def test_same_padding_matches_tensorflow_rule():
    x = torch.zeros(1, 1, 7, 8, 5)
    # T=7, k=3, s=2: 7 % 2 = 1 -> pad 3 - 1 = 2 -> (1, 1); H=8: pad 3 - 2 = 1 -> (0, 1); W=5, k=1, s=1: 0
    assert _same_pad(x, (3, 3, 1), (2, 2, 1)).shape == (1, 1, 9, 9, 5)


def test_i3d_shapes_and_weight_round_trip(tmp_path):
    torch.manual_seed(0)
    model = InceptionI3d(resize_input=False)
    clips = torch.rand(2, 3, 4, 32, 32)
    logits = model(clips)
    assert logits.shape == (2, 400)
    assert model.features(clips).shape == (2, 1024)
    torch.save(model.state_dict(), tmp_path / "rgb_imagenet.pt")
    loaded = InceptionI3d.from_file(tmp_path / "rgb_imagenet.pt")
    loaded.resize_input = False
    torch.testing.assert_close(loaded(clips), logits)
    with pytest.raises(ValueError, match="B, 3, T, H, W"):
        model(torch.rand(2, 4, 32, 32))


def test_fvd_is_the_frechet_distance_of_clip_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 5)), rng.normal(1.0, 1.0, size=(7, 5))
    assert fvd(a, b) == pytest.approx(frechet_distance_from_features(a, b))


def test_fvd_windows_do_not_overlap_and_drop_the_rest():
    frames = torch.arange(35.0)[:, None, None, None].expand(35, 3, 2, 2)  # frame t holds the value t
    windows = clip_windows(frames)
    assert windows.shape == (2, 3, 16, 2, 2)  # frames 0-15 and 16-31; 32-34 are left out
    assert windows[0, 0, :, 0, 0].tolist() == list(range(16))
    assert windows[1, 2, :, 1, 1].tolist() == list(range(16, 32))
    assert clip_windows(frames[:15]).shape[0] == 0
    assert clip_windows(frames, window=5).shape == (7, 3, 5, 2, 2)


def test_fvd_warns_when_the_covariance_is_singular(caplog):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    # the rule: N samples give a covariance of rank N - 1, singular below D + 1 = 6 samples of 5-d features
    assert np.linalg.matrix_rank(np.cov(a[:5], rowvar=False)) == 4
    assert np.linalg.matrix_rank(np.cov(a, rowvar=False)) == 5
    assert covariance_warning(6, 5) is None and "rank <= 4 < 5" in covariance_warning(5, 5)
    full = fvd_over_windows(a, b)
    assert (full.windows, full.feature_dim, full.warning) == (6, 5, None)
    assert full.value == pytest.approx(frechet_distance_from_features(a, b))
    with caplog.at_level("WARNING"):
        few = fvd_over_windows(a[:5], b)
    assert few.windows == 5 and "singular" in few.warning and "singular" in caplog.text
    with pytest.raises(ValueError, match="at least 2 windows"):
        fvd_over_windows(a[:1], b)


def test_cosine_similarity_by_hand():
    np.testing.assert_allclose(cosine_similarity([[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, -1.0]]),
                               [1 / np.sqrt(2), -1.0])


def test_clip_frame_metrics_average_frames():
    gt = torch.zeros(2, 3, 16, 16)
    pred = torch.stack([torch.full((3, 16, 16), 0.1), torch.full((3, 16, 16), 0.3)])
    m = clip_frame_metrics(pred, gt)
    assert m["l1"] == pytest.approx(0.2)
    c1 = 0.01**2
    assert m["ssim"] == pytest.approx(np.mean([c1 / (v**2 + c1) for v in (0.1, 0.3)]), rel=1e-5)


class _TinyFaceNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.fc = torch.nn.Linear(4 * 7 * 7, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_identity_encoder_runs_an_onnx_model(tmp_path):
    torch.manual_seed(0)
    net = _TinyFaceNet().eval()
    path = tmp_path / "face.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(path), dynamo=False, input_names=["input.1"],
                      dynamic_axes={"input.1": {0: "batch"}})
    encoder = IdentityEncoder(path)
    assert encoder.input_size == (16, 16)
    images = torch.rand(3, 3, 16, 16)
    expected = net((images * 255.0 - 127.5) / 127.5).detach().numpy()
    np.testing.assert_allclose(encoder(images), expected, rtol=1e-4, atol=1e-5)
    assert clip_identity_similarity(encoder, images, images) == pytest.approx(1.0)
    sim = clip_identity_similarity(encoder, images, images[:1])
    assert sim == pytest.approx(float(np.mean(cosine_similarity(expected, np.broadcast_to(expected[:1], (3, 8))))),
                                rel=1e-5)


def test_identity_encoder_missing_model(tmp_path):
    with pytest.raises(MissingPathError, match="ONNX"):
        IdentityEncoder(tmp_path / "arcface.onnx")
