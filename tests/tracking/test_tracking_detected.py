"""``jointportrait track`` with no ``--landmarks`` and ``jointportrait landmarks`` on a real-derived clip (the
astronaut photo moving, one frame without a face): detection, skipped frames, crops, clear errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from jointportrait.cli.face_crop import face_detector
from jointportrait.cli.main import main
from jointportrait.data.datasets import FrameDataset
from jointportrait.io import load_depth
from jointportrait.tracking.landmarks import load_landmarks

FACE_FRAMES = [0, 1, 2, 4, 5]  # frame 3 of the astronaut clip holds no face


def _true_points(astronaut_hand_labels, clip) -> tuple[np.ndarray, np.ndarray]:
    """Indices and per-frame positions ``(6, K, 2)`` of the hand-labelled points in the clip."""
    idx = np.array(list(astronaut_hand_labels))
    hand = np.array(list(astronaut_hand_labels.values()))
    return idx, np.stack([hand @ m[:, :2].T + m[:, 2] for m in clip.maps])


def test_track_detects_skips_and_writes_face_crops(tmp_path, astronaut_clip, astronaut_hand_labels, capsys):
    out = tmp_path / "out"  # the default face model: the ICT model shipped with the package
    argv = ["track", "--video", str(astronaut_clip.path), "--out", str(out), "--no-photometric", "--face-crop",
            "--crop-size", "64", "--subject", "astronaut"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "no face in 1 of 6 frames (skipped): 3" in printed and "wrote 5 frames" in printed
    assert "mean landmark error" in printed

    # the detected landmarks: NaN in the faceless frame, elsewhere close to the hand labels moved with the clip
    used = load_landmarks(out / "landmarks.json", num_frames=6)
    assert np.isnan(used[astronaut_clip.faceless]).all()
    idx, truth = _true_points(astronaut_hand_labels, astronaut_clip)
    outer_eyes = np.linalg.norm(truth[:, list(idx).index(45)] - truth[:, list(idx).index(36)], axis=-1)  # ~40 px
    error = np.linalg.norm(used[FACE_FRAMES][:, idx] - truth[FACE_FRAMES], axis=-1).mean(-1)
    assert (error / outer_eyes[FACE_FRAMES] < 0.07).all()

    summary = json.loads((out / "track.json").read_text())
    assert summary["frame_ids"] == FACE_FRAMES and summary["skipped_frames"] == [astronaut_clip.faceless]
    assert len(summary["landmark_error_px"]) == 5 and max(summary["landmark_error_px"]) < 0.12 * 40
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == FACE_FRAMES
    for r in records:
        image = np.asarray(Image.open(out / r["image"]))
        depth = load_depth(out / r["depth"])
        mask = np.asarray(Image.open(out / r["mask"])) == 255
        assert image.shape == (64, 64, 3) and depth.shape == mask.shape == (64, 64)
        assert r["source"] == "wild" and r["crop"]["size"] == 64
        assert 0.3 < mask.mean() < 0.95 and np.all(depth[mask] > 0) and np.all(depth[~mask] == 0)
        # the crop's intrinsics put the fitted face where the photo's face is: the eyes lie on the mesh
        K = np.asarray(r["intrinsics"])
        assert K[0, 0] == K[1, 1] and 0 < K[0, 2] < 64
        x0, y0, side = r["crop"]["x0"], r["crop"]["y0"], r["crop"]["side"]
        eyes = (truth[r["frame"], :12] - [x0, y0] + 0.5) * 64 / side - 0.5  # points 36-47 in crop pixels
        rows, cols = np.round(eyes[:, 1]).astype(int), np.round(eyes[:, 0]).astype(int)
        assert mask[rows, cols].all()
    # the folder feeds training as it is
    sample = FrameDataset(out, size=64, source="wild")[0]
    assert sample["image"].shape == (3, 64, 64) and sample["valid"].float().mean() > 0.3


def test_landmarks_command_image_video_and_errors(tmp_path, astronaut, astronaut_clip, capsys):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    out = tmp_path / "astronaut.npy"
    assert main(["landmarks", "--image", str(photo), "--out", str(out), "--preview", str(tmp_path / "p.png")]) == 0
    points = np.load(out)
    assert points.shape == (1, 68, 2) and 180 < points[0, 30, 0] < 260
    assert np.asarray(Image.open(tmp_path / "p.png")).shape == (512, 512, 3)
    # existing outputs are kept
    assert main(["landmarks", "--image", str(photo), "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err

    clip_out = tmp_path / "clip.json"
    assert main(["landmarks", "--video", str(astronaut_clip.path), "--out", str(clip_out)]) == 0
    assert "no face in 1 of 6 frames: 3" in capsys.readouterr().out
    assert main(["landmarks", "--video", str(astronaut_clip.path), "--out", str(tmp_path / "x.json"),
                 "--face-index", "1"]) == 2
    assert "--face-index 1 asks for face 2, but no frame has more than 1 face(s)" in capsys.readouterr().err
    assert np.isnan(load_landmarks(clip_out)[3]).all() and np.isfinite(load_landmarks(clip_out)[FACE_FRAMES]).all()

    # a photo without a face: one line, nothing written
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(grey)
    assert main(["landmarks", "--image", str(grey), "--out", str(tmp_path / "grey.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {grey}: no face found" and not (tmp_path / "grey.npy").exists()
    # several faces: said, and --face-index picks one
    two = np.full((240, 400, 3), 200, np.uint8)
    two[20:216, 5:215] = np.asarray(Image.fromarray(astronaut[60:200, 150:300]).resize((210, 196)))
    two[50:190, 240:390] = astronaut[60:200, 150:300]
    Image.fromarray(two).save(tmp_path / "two.png")
    assert main(["landmarks", "--image", str(tmp_path / "two.png"), "--out", str(tmp_path / "two.npy"),
                 "--face-index", "1"]) == 0
    assert "2 faces found; using index 1" in capsys.readouterr().out
    assert np.load(tmp_path / "two.npy")[0, 30, 0] > 240  # the right-hand (smaller) face
    assert main(["landmarks", "--image", str(tmp_path / "two.png"), "--out", str(tmp_path / "three.npy"),
                 "--face-index", "2"]) == 2
    assert "only 2 face(s) found" in capsys.readouterr().err and not (tmp_path / "three.npy").exists()


def test_track_errors_no_face_and_missing_extra(tmp_path, monkeypatch, capsys):
    blank = tmp_path / "blank"
    blank.mkdir()
    for f in range(3):
        Image.fromarray(np.full((96, 96, 3), 90 + 10 * f, np.uint8)).save(blank / f"{f}.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["track", "--video", str(blank), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the detection's progress bar
    assert err == f"error: {blank}: no face found in any of its 3 frames; nothing was written"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    face_detector.cache_clear()  # a fresh process, where the faces extra is not installed
    monkeypatch.setitem(sys.modules, "dlib", None)
    assert main(["track", "--video", str(blank), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: face detection needs the optional extra 'faces'") and "\n" not in err
    assert "pip install 'jointportrait[faces]'" in err
    assert main(["landmarks", "--image", str(blank / "0.png"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "jointportrait[faces]" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_given_landmarks_may_mark_frames_without_a_face(tmp_path):
    data = np.random.default_rng(0).uniform(10, 50, (3, 68, 2)).astype(np.float32)
    data[1] = np.nan
    np.save(tmp_path / "ok.npy", data)
    assert np.isnan(load_landmarks(tmp_path / "ok.npy")[1]).all()
    data[1, 1:] = 5.0  # one NaN point is not a missing face
    np.save(tmp_path / "bad.npy", data)
    with pytest.raises(ValueError, match="frame 1 .*must be all NaN"):
        load_landmarks(tmp_path / "bad.npy")
