"""``jointportrait track`` end to end on a tiny synthetic clip: outputs follow the dataset contract."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from jointportrait.cli.main import main
from jointportrait.data.datasets import ClipDataset, FrameDataset
from jointportrait.face_models import load_face_model
from jointportrait.io import load_depth
from jointportrait.tracking.evaluation import load_synthetic_clip
from jointportrait.tracking.video import read_frames


def _write_inputs(tmp_path, video, model_path):
    clip = load_synthetic_clip(video, load_face_model(model_path), noise_px=1.5)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for f, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames_dir / f"{f:03d}.png")
    np.save(tmp_path / "landmarks.npy", clip.landmarks)
    return clip, frames_dir, tmp_path / "landmarks.npy"


def test_track_writes_a_wild_dataset(tmp_path, tiny_video, face_model_path, capsys):
    clip, frames_dir, landmarks = _write_inputs(tmp_path, tiny_video, face_model_path)
    out = tmp_path / "out"
    argv = ["track", "--video", str(frames_dir), "--landmarks", str(landmarks), "--out", str(out),
            "--subject", "p001", "--split", "val", "--no-photometric"]
    argv += ["--face-model", str(face_model_path)] if face_model_path is not None else []
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    for r in records:
        assert (r["source"], r["subject"], r["clip"], r["split"]) == ("wild", "p001", "p001_c00", "val")
        image = np.asarray(Image.open(out / r["image"]))
        depth = load_depth(out / r["depth"])
        mask = np.asarray(Image.open(out / r["mask"])) == 255
        skin = np.asarray(Image.open(out / r["skin_mask"])) == 255
        np.testing.assert_array_equal(image, clip.frames[r["frame"]])
        assert depth.shape == mask.shape == skin.shape == (64, 64)
        assert np.all(depth[mask] > 0) and np.all(depth[~mask] == 0) and not np.any(skin & ~mask)
        K = np.asarray(r["intrinsics"])
        assert K[0, 0] == K[1, 1] > 0 and K[0, 2] == K[1, 2] == 31.5
        preview = np.asarray(Image.open(out / r["depth_preview"]))
        assert preview.dtype == np.uint16 and np.all((preview > 0) == mask)
    summary = json.loads((out / "track.json").read_text())
    assert len(summary["landmark_error_px"]) == 4 and max(summary["landmark_error_px"]) < 2.0
    overlay = next(p for p in out.iterdir() if p.stem == "overlay")
    assert len(read_frames(overlay)[0]) == 4 if overlay.suffix == ".mp4" else overlay.suffix == ".gif"
    assert "wrote 4 frames" in capsys.readouterr().out

    # the training datasets read the folder directly
    frames = FrameDataset(out, size=64, source="wild")
    sample = frames[1]
    assert len(frames) == 4 and sample["subject"] == "p001"
    assert sample["image"].shape == (3, 64, 64) and sample["depth"].shape == sample["valid"].shape == (1, 64, 64)
    np.testing.assert_array_equal(sample["valid"][0].numpy() > 0, np.asarray(Image.open(out / records[1]["mask"])) > 0)
    window = ClipDataset(out, size=64, num_frames=2, num_motion_frames=2)[0]
    assert window["depth"].shape == (2, 1, 64, 64) and window["clip"] == "p001_c00"

    # existing outputs are kept unless --overwrite
    assert main(argv) == 2
    assert "exists already" in capsys.readouterr().err


def test_track_rejects_bad_landmarks_and_diverged_fits(tmp_path, tiny_video, face_model_path, capsys):
    clip, frames_dir, landmarks = _write_inputs(tmp_path, tiny_video, face_model_path)
    np.save(tmp_path / "short.npy", clip.landmarks[:2])
    out = tmp_path / "out"
    assert main(["track", "--video", str(frames_dir), "--landmarks", str(tmp_path / "short.npy"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "short.npy" in err and "\n" not in err

    # scrambled landmarks cannot be explained by a head: reported, not written
    scrambled = clip.landmarks.copy()
    rng = np.random.default_rng(0)
    for f in range(len(scrambled)):
        scrambled[f] = scrambled[f][rng.permutation(68)]
    np.save(tmp_path / "scrambled.npy", scrambled)
    assert main(["track", "--video", str(frames_dir), "--landmarks", str(tmp_path / "scrambled.npy"),
                 "--out", str(out), "--no-photometric"]) == 2
    assert "diverged" in capsys.readouterr().err
    assert not out.exists()
