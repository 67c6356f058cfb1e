"""`jointportrait evaluate video` (Table 3): self reenactment with windowed FVD, cross reenactment on real faces,
image quality, the seam score of animate output folders, and what is omitted or refused, and why."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from jointportrait.cli.main import main
from jointportrait.evaluation import i3d
from jointportrait.evaluation.hyperiqa import HyperIQA
from jointportrait.evaluation.i3d import InceptionI3d
from jointportrait.evaluation.seams import seam_score
from jointportrait.evaluation.video_evaluation import VideoEvaluationOptions, evaluate_video
from jointportrait.tracking.stages import TrackerConfig


def _write_clip(folder, frames) -> None:
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(np.ascontiguousarray(frame)).save(folder / f"{t:03d}.png")


def _read(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]).astype(np.float64) / 255.0


def test_self_reenactment_fvd_windows_and_seams(tmp_path, capsys, monkeypatch, caplog):
    monkeypatch.setattr(i3d, "I3D_INPUT_SIZE", 32)  # keeps the test fast
    rng = np.random.default_rng(0)
    for side in ("pred", "gt"):
        for clip in ("c0", "c1"):  # 18 frames: one 16-frame window each, 2 frames left out
            _write_clip(tmp_path / side / clip, rng.integers(0, 255, (18, 16, 16, 3), dtype=np.uint8))
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), tmp_path / "i3d.pt")
    out = tmp_path / "video.json"
    with caplog.at_level("WARNING"):
        assert main(["evaluate", "video", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                     "--i3d-weights", str(tmp_path / "i3d.pt"), "--clip-length", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["count"] == 2 and np.isfinite(report["mean"]["fvd"])
    fvd = report["fvd"]
    assert (fvd["windows"], fvd["window"], fvd["feature_dim"], fvd["frames_left_out"]) == (2, 16, 400, 4)
    assert "singular" in fvd["warning"] and "singular" in caplog.text  # 2 windows, 400-d features
    pred = _read(tmp_path / "pred" / "c1")
    gt = _read(tmp_path / "gt" / "c1")
    row = report["per_item"][1]
    assert row["l1"] == pytest.approx(np.abs(pred - gt).mean(), rel=1e-5)
    assert row["seam_score"] == pytest.approx(seam_score(pred, [0, 8, 16]).score, rel=1e-5)
    assert set(report["omitted"]) == {"lpips", "id_similarity", "image_quality", "expression_error", "pose_error"}
    printed = capsys.readouterr().out
    assert "FVD↓" in printed and "Seam (1 = seamless)" in printed
    assert "- Expression error omitted: no --driving frames (cross reenactment) given" in printed
    assert "- Image quality omitted: no --iqa-weights given" in printed


def test_animate_folders_give_their_clip_starts_and_image_quality(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    run = tmp_path / "pred" / "clip"
    (run / "frames").mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(run / "frames" / f"{t:04d}_rgb.png")
        np.save(run / "frames" / f"{t:04d}_depth.npy", np.zeros((32, 32), np.float32))
    (run / "run.json").write_text(json.dumps({"clip_starts": [0, 2], "arguments": {"fps": 12.0}}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = HyperIQA()
    torch.save(model.state_dict(), tmp_path / "koniq_pretrained.pkl")
    result = evaluate_video(tmp_path / "pred", options=VideoEvaluationOptions(
        iqa_weights=tmp_path / "koniq_pretrained.pkl", iqa_crops=1, clip_length=3))
    row = result.rows[0]
    assert row["frames"] == 4
    assert row["seam_score"] == pytest.approx(seam_score(frames / 255.0, [0, 2]).score, rel=1e-5)  # not every 3
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    assert row["image_quality"] == pytest.approx(float(model.score(x, num_crops=1).mean()), rel=1e-5)
    assert any("LIQE" in n for n in result.notes)
    assert set(result.omitted) == {"l1", "ssim", "lpips", "fvd", "id_similarity", "expression_error", "pose_error"}
    assert "no --gt" in result.omitted["fvd"]


def _astronaut_frames(astronaut, extra_roll_deg: float, count: int = 2, size: int = 160) -> list[np.ndarray]:
    """``count`` frames of the astronaut's face panning slowly, rolled by ``extra_roll_deg`` about the frame
    centre (the principal point: the same as rolling the camera, so the head pose changes by exactly that)."""
    frames = []
    for t in range(count):
        m = cv2.getRotationMatrix2D((222.0, 130.0), 3.0 * t, 1.0)
        m[:, 2] += (4.0 * t - 142.0, -2.0 * t - 50.0)
        frame = cv2.warpAffine(astronaut, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        roll = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), extra_roll_deg, 1.0)
        frames.append(cv2.warpAffine(frame, roll, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def test_cross_reenactment_pose_error_of_a_rolled_head(tmp_path, astronaut):
    """The generated clip is the driving clip rolled by 10 degrees: the tracker fits of both (detected landmarks,
    landmark-only fit) differ by 10 degrees of head rotation (measured 10.2) and hardly in expression."""
    _write_clip(tmp_path / "driving" / "clip", _astronaut_frames(astronaut, 0.0))
    _write_clip(tmp_path / "pred" / "clip", _astronaut_frames(astronaut, 10.0))
    options = VideoEvaluationOptions(tracker=TrackerConfig(photometric=False, rigid_steps=10, shape_steps=40))
    result = evaluate_video(tmp_path / "pred", driving_dir=tmp_path / "driving", options=options)
    row = result.rows[0]
    assert row["motion_frames"] == 2
    assert row["pose_error"] == pytest.approx(10.0, abs=1.5)
    assert row["expression_error"] < 0.15
    assert "expression_error" not in result.omitted and result.mean["pose_error"] == row["pose_error"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--driving", "{tmp}/short"], "2 driving frames for 3 generated ones"),
    (["--reference", "{tmp}/refs"], "no reference image for clip 'clip'"),
    (["--gt", "{tmp}/short"], "2 ground-truth frames for 3 generated ones"),
    (["--gt", "{tmp}/big"], "frames of 8 x 8 px differ from the ground-truth frames' 16 x 16 px"),
    (["--fvd-window", "0"], "--fvd-window must be >= 1"),
    (["--gt", "{tmp}/nowhere"], "no such folder"),
])
def test_bad_video_input_is_one_line(tmp_path, capsys, extra, message):
    _write_clip(tmp_path / "pred" / "clip", np.zeros((3, 8, 8, 3), np.uint8))
    _write_clip(tmp_path / "short" / "clip", np.zeros((2, 8, 8, 3), np.uint8))
    _write_clip(tmp_path / "big" / "clip", np.zeros((3, 16, 16, 3), np.uint8))
    (tmp_path / "refs").mkdir()
    argv = ["evaluate", "video", "--pred", str(tmp_path / "pred"), "--out", str(tmp_path / "r.json"),
            "--identity-model", str(tmp_path / "none.onnx")]
    argv = argv[:-2] if "--reference" not in extra else argv
    assert main(argv + [a.format(tmp=tmp_path) for a in extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_video_options_are_refused_for_other_tasks(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    assert main(["evaluate", "image", "--pred", str(tmp_path / "p"), "--gt", str(tmp_path / "p"),
                 "--driving", str(tmp_path / "p"), "--out", str(tmp_path / "r.json")]) == 2
    assert "--driving applies to video evaluation only" in capsys.readouterr().err
    assert main(["evaluate", "depth", "--pred", str(tmp_path / "p"), "--out", str(tmp_path / "r.json")]) == 2
    assert "--gt is required for depth evaluation" in capsys.readouterr().err


def test_expression_and_pose_say_why_when_no_face_is_found(tmp_path):
    _write_clip(tmp_path / "pred" / "clip", np.full((2, 48, 48, 3), 90, np.uint8))
    _write_clip(tmp_path / "driving" / "clip", np.full((2, 48, 48, 3), 160, np.uint8))
    result = evaluate_video(tmp_path / "pred", driving_dir=tmp_path / "driving")
    assert "expression_error" not in result.mean
    assert result.omitted["pose_error"] == ("no usable face fit in any clip: clip (generated: no face found in any "
                                            "frame; driving: no face found in any frame)")
