"""``jointportrait create --video`` and ``jointportrait animate`` end to end on tiny models (paper Sec. 5.5):
the three driving sources, the files written, same seed same video, the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from jointportrait.applications.animation import driving_kind, retarget_track
from jointportrait.cli.main import main
from jointportrait.data.manifest import write_manifest
from jointportrait.face_models import NUM_EXPRESSION, NUM_IDENTITY, load_face_model
from jointportrait.tracking.params import TrackParams
from jointportrait.tracking.tracker import render_fit

FAST = ["--steps", "2", "--clip-length", "3", "--motion-frames", "1"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, moving_sphere_depths):
    root = tmp_path_factory.mktemp("animate_inputs")
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 255, (70, 60, 3), dtype=np.uint8)).save(root / "reference.jpg")
    (root / "depth").mkdir()
    for i, d in enumerate(moving_sphere_depths):
        np.save(root / "depth" / f"f{i:03d}.npy", d)
    (root / "frames").mkdir()
    for i in range(4):
        PIL.Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(root / "frames" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def video_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("video_model")
    assert main(["create", "--tiny", "--video", "--out", str(out), "--overwrite"]) == 0
    return out


def _write_track(folder: Path, model, identity: torch.Tensor, frames: int = 3, size: int = 48) -> TrackParams:
    """A folder as ``jointportrait track`` writes it (the parts animate reads): params.npz, track.json,
    manifest.jsonl with its images."""
    g = torch.Generator().manual_seed(frames)
    params = TrackParams.initial(model, frames, focal=90.0)
    params.identity = identity
    params.expression = torch.rand(frames, NUM_EXPRESSION, generator=g) * 0.6
    params.rotation = (torch.rand(frames, 3, generator=g) - 0.5) * 0.3
    params.translation = torch.tensor([[0.0, 0.0, 45.0]]).repeat(frames, 1)
    folder.mkdir(parents=True)
    params.save(folder / "params.npz")
    (folder / "track.json").write_text(json.dumps({"face_model": model.name, "fps": 30.0, "frames": frames}))
    (folder / "images").mkdir()
    records = []
    for f in range(frames):
        PIL.Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(folder / "images" / f"c_f{f:04d}.png")
        records.append({"image": f"images/c_f{f:04d}.png", "depth": f"images/c_f{f:04d}.png",
                        "mask": f"images/c_f{f:04d}.png", "subject": "s",
                        "clip": "c", "frame": f, "split": "test", "source": "wild"})
    write_manifest(folder / "manifest.jsonl", records)
    return params


def _run(args) -> int:
    return main(["animate", *map(str, args)])


def test_create_video_and_animate_a_depth_folder(tmp_path, inputs, video_model, capsys):
    assert (video_model / "motion_adapter" / "config.json").is_file()
    out = tmp_path / "a"
    assert _run(["--model", video_model, "--reference", inputs / "reference.jpg", "--driving", inputs / "depth",
                 "--out", out, *FAST]) == 0
    assert "wrote 5 frames in 2 clips" in capsys.readouterr().out
    names = sorted(p.name for p in (out / "frames").iterdir())
    assert names[:2] == ["0000_depth.npy", "0000_rgb.png"] and len(names) == 10
    with PIL.Image.open(out / "frames" / "0004_rgb.png") as img:
        assert img.size == (64, 64)  # the model's native size
    assert np.load(out / "frames" / "0000_depth.npy").shape == (64, 64)
    video = next(p for p in (out / "animation.mp4", out / "animation.gif") if p.exists())
    assert video.stat().st_size > 0
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and run["frames"] == 5 and run["clip_starts"] == [0, 3]
    assert run["driving"]["kind"] == "depth" and run["arguments"]["motion_frames"] == 1
    assert run["seam"]["boundaries"] == 1 and run["seam"]["seam_score"] > 0
    assert {"load_s", "animate_s", "seconds_per_frame", "write_s"} <= set(run["timings"])

    again = tmp_path / "b"
    assert _run(["--model", video_model, "--reference", inputs / "reference.jpg", "--driving", inputs / "depth",
                 "--out", again, *FAST]) == 0
    for name in ("0003_rgb.png", "0004_depth.npy"):
        assert (out / "frames" / name).read_bytes() == (again / "frames" / name).read_bytes()  # same seed

    # outputs exist: refused before any work, then replaced with --overwrite
    assert _run(["--model", video_model, "--reference", inputs / "reference.jpg", "--driving", inputs / "depth",
                 "--out", out, *FAST]) == 2
    assert "exists already" in capsys.readouterr().err
    assert _run(["--model", video_model, "--reference", inputs / "reference.jpg", "--driving", inputs / "depth",
                 "--out", out, "--num-frames", "2", "--seed", "3", "--overwrite", *FAST]) == 0


def test_animate_a_frame_folder_estimates_the_drivers_depth(tmp_path, inputs, video_model):
    out = tmp_path / "v"
    assert _run(["--model", video_model, "--reference", inputs / "reference.jpg", "--driving", inputs / "frames",
                 "--out", out, "--num-frames", "3", *FAST]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["driving"]["kind"] == "video" and run["frames"] == 3 and run["timings"]["driving_s"] > 0


def test_retargeting_renders_the_references_identity_with_the_drivers_motion(tmp_path, face_model_path):
    model = load_face_model(face_model_path)
    g = torch.Generator().manual_seed(0)
    driver = _write_track(tmp_path / "driver", model, torch.randn(1, NUM_IDENTITY, generator=g))
    reference = _write_track(tmp_path / "reference", model, torch.randn(1, NUM_IDENTITY, generator=g) * 2, frames=1)
    assert driving_kind(tmp_path / "driver") == "track"
    own = retarget_track(tmp_path / "driver", face_model=face_model_path)
    moved = retarget_track(tmp_path / "driver", tmp_path / "reference", face_model=face_model_path)
    driver.identity = reference.identity
    expected, mask, _, _ = render_fit(model, driver, 48, 48)
    assert len(moved) == 3 and moved.fps == 30.0
    assert all(np.array_equal(d, e) and np.array_equal(v, m) for d, e, v, m in zip(moved.depths, expected,
                                                                                     moved.valid, mask))
    assert not np.allclose(own.depths[0], moved.depths[0])  # the driver's face shape does not leak
    assert all(v.sum() > 50 for v in moved.valid)


def test_animate_a_track_folder(tmp_path, inputs, video_model, face_model_path):
    model = load_face_model(face_model_path)
    _write_track(tmp_path / "driver", model, torch.zeros(1, NUM_IDENTITY))
    _write_track(tmp_path / "ref", model, torch.ones(1, NUM_IDENTITY), frames=1)
    out = tmp_path / "t"  # the face model is the one the track records
    assert _run(["--model", video_model, "--reference", inputs / "reference.jpg", "--driving", tmp_path / "driver",
                 "--reference-track", tmp_path / "ref", "--out", out, *FAST]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["driving"]["kind"] == "track" and run["driving"]["identity"] == str(tmp_path / "ref")


@pytest.mark.parametrize("change, message", [
    ({"--driving": "absent"}, "no such driving"),
    ({"--clip-length": "0"}, "--clip-length must be >= 1"),
    ({"--motion-frames": "5"}, "--motion-frames (5) must not exceed --clip-length (3)"),
    ({"--clip-length": "40"}, "exceeds the motion modules' 32 positions"),
    ({"--num-frames": "9"}, "the driving source has 5 frames"),
    ({"--reference": "missing.png"}, "no such image"),
    ({"--reference-track": "somewhere"}, "goes with a driving folder written by jointportrait track"),
])
def test_bad_input_is_one_line(tmp_path, inputs, video_model, capsys, change, message):
    args = {"--model": video_model, "--reference": inputs / "reference.jpg", "--driving": inputs / "depth",
            "--out": tmp_path / "o", "--steps": "1", "--clip-length": "3", "--motion-frames": "1"}
    for key, value in change.items():
        args[key] = tmp_path / value if key in ("--driving", "--reference", "--reference-track") else value
    assert _run([x for kv in args.items() for x in kv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_an_image_model_is_not_a_video_model(tmp_path, inputs, tiny_model_dir, capsys):
    assert _run(["--model", tiny_model_dir, "--reference", inputs / "reference.jpg", "--driving", inputs / "depth",
                 "--out", tmp_path / "o", *FAST]) == 2
    assert "not a video model" in capsys.readouterr().err


def test_create_with_a_motion_adapter_checkpoint(tmp_path, capsys):
    from jointportrait.loading import tiny_base_components
    from jointportrait.models.motion import build_motion_adapter
    from jointportrait.pipelines import JointPortraitVideoPipeline

    adapter = build_motion_adapter(tiny_base_components().unet, seed=4, zero_output=False)
    adapter.save_pretrained(tmp_path / "adapter")
    assert main(["create", "--tiny", "--motion-adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "m")]) == 0
    assert "motion modules" in capsys.readouterr().out
    pipe = JointPortraitVideoPipeline.from_pretrained(tmp_path / "m", local_files_only=True)
    assert all(torch.equal(a, b) for a, b in zip(pipe.motion_adapter.state_dict().values(),
                                                 adapter.state_dict().values()))
    assert main(["create", "--tiny", "--motion-adapter", str(tmp_path / "adapter"), "--zero-motion-output",
                 "--out", str(tmp_path / "z")]) == 0
    zeroed = JointPortraitVideoPipeline.from_pretrained(tmp_path / "z", local_files_only=True)
    assert zeroed.motion_adapter.down_blocks[0].motion_modules[0].proj_out.weight.abs().sum() == 0

    big = build_motion_adapter(tiny_base_components().unet, seed=4)
    big.register_to_config(block_out_channels=(64, 128))
    type(big)(**{k: v for k, v in big.config.items() if not k.startswith("_")}).save_pretrained(tmp_path / "big")
    assert main(["create", "--tiny", "--motion-adapter", str(tmp_path / "big"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "another UNet" in err and len(err.strip().splitlines()) == 1
    assert main(["create", "--tiny", "--zero-motion-output", "--out", str(tmp_path / "y")]) == 2
