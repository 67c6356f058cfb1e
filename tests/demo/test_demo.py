"""``jointportrait demo``: the reduced run in the default suite, the full run marked slow."""

import json

import pytest
from PIL import Image

from jointportrait.cli.main import main
from jointportrait.demo.video import MODES


def _check_report(out, capsys):
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    depth_rows = metrics["depth_estimation"]["rows"]
    image_rows = metrics["depth_to_image"]["rows"]
    assert set(depth_rows) == {"Ours (joint, stage 2)", "w/o joint learning", "Trivial: mean training depth"}
    assert set(image_rows) == {"Ours (joint, stage 2)", "w/o joint learning", "Trivial: reference copied"}
    for row in depth_rows.values():
        assert 0 <= row["abs_rel"] < 1 and 0 <= row["delta1"] <= 1 and row["rmse"] >= 0
    minmax_rows = metrics["depth_estimation"]["rows_minmax"]  # ground truth min-max normalised in the mask
    assert set(minmax_rows) == set(depth_rows)
    for name, row in minmax_rows.items():  # a [0, 1] ground truth: larger relative errors, RMSE in [0, 1]
        assert row["abs_rel"] > depth_rows[name]["abs_rel"] and 0 <= row["delta1"] <= 1 and 0 <= row["rmse"] <= 1
    for row in image_rows.values():
        assert 0 <= row["l1"] <= 1 and -1 <= row["ssim"] <= 1
    page = (out / "index.html").read_text()
    assert "min-max normalised to [0, 1] inside the mask" in page and "in depth space" in page
    for figure in ("depth_estimation.png", "depth_to_image.png", "joint_generation.png", "relighting.png"):
        assert (out / figure).stat().st_size > 0 and figure in page
    assert "Depth estimation (Table 1)" in printed and "face model:" in printed
    assert (out / "runs" / "stage2" / "final" / "model_index.json").exists()
    # the video part: stage 3 on synthetic clips, held-out clips animated both ways, Table 3's L1, SSIM, seam score
    assert (out / "runs" / "stage3" / "final" / "motion_adapter" / "config.json").exists()
    video = metrics["animation"]
    assert set(video["rows"]) == {"motion frames", "independent clips"}
    for row in video["rows"].values():
        assert 0 <= row["l1"] <= 1 and -1 <= row["ssim"] <= 1 and row["seam_score"] > 0
        assert row["inner_change"] > 0 and row["boundary_change"] > 0
    assert video["n_animations"] == video["n_clips"] * len(video["config"]["seeds"]) > 0
    assert 0 <= video["seam_wins"] <= video["n_animations"]
    with Image.open(out / "fig_animation.gif") as gif:  # driving depth | ground truth | two animations
        assert gif.n_frames == video["frames_per_clip"] and gif.width == 4 * gif.height
    assert "fig_animation.gif" in page and "Animation (paper Table 3" in page
    assert "Animation (Table 3, self reenactment)" in printed and "| motion frames |" in printed
    # expression and pose error: tracker fits of every animation and of its ground-truth frames
    motion = video["facial_motion"]["rows"]
    assert list(motion) == ["motion frames", "independent clips", "Trivial: reference held still",
                            "tracker on ground truth vs true parameters"]
    frames = video["n_clips"] * video["frames_per_clip"]
    for name in ("Trivial: reference held still", "tracker on ground truth vs true parameters"):
        row = motion[name]  # dlib finds the rendered faces in every ground-truth frame
        assert row["frames_compared"] == row["frames"] == frames and row["animations"] == video["n_clips"]
        assert 0 < row["expression_error"] < 5 and 0 < row["pose_error"] < 90
    for name in MODES:
        row = motion[name]
        assert row["frames"] == frames * len(video["config"]["seeds"]) and row["of_animations"] == video["n_animations"]
        assert (row["expression_error"] is None) == (row["frames_compared"] == 0)
    assert "Expression and pose error" in page and "frames compared" in page
    assert "| Trivial: reference held still |" in printed
    return metrics


def test_demo_quick_runs_every_stage(tmp_path, capsys, face_model_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    metrics = _check_report(out, capsys)
    expected = "ict-facekit-light" if face_model_path is not None else "procedural-head"
    assert metrics["face_model"] == expected
    assert metrics["steps"]["stage1"] == 2 and metrics["steps"]["stage3"] == 2


def test_demo_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["demo", "--minutes", "0", "--out", str(tmp_path)]) == 2
    assert main(["demo", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert main(["demo", "--subjects", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "--subjects" in err[2]


@pytest.mark.slow
def test_full_demo_finishes_in_time_and_learns_both_tasks(tmp_path, capsys):
    """The default demo (docs/REPRODUCTION.md): from the shipped base, within 25 minutes on 2 cores, both depth
    estimators beat the aligned mean-depth prior and both depth-to-image networks beat copying the reference on
    L1 and SSIM. Timed from an empty folder on quiet machines: 7 min 47 s on one, 20 min 39 s on another whose
    CPU does the same training step 2.6x slower (docs/REPRODUCTION.md); the bound was 20 minutes before the
    second machine."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    metrics = _check_report(out, capsys)
    assert sum(metrics["timings_s"].values()) < 25 * 60
    depth = metrics["depth_estimation"]["rows"]
    prior = depth["Trivial: mean training depth"]["abs_rel"]
    assert depth["Ours (joint, stage 2)"]["abs_rel"] < prior and depth["w/o joint learning"]["abs_rel"] < prior
    images = metrics["depth_to_image"]["rows"]
    copy = images["Trivial: reference copied"]
    for name in ("Ours (joint, stage 2)", "w/o joint learning"):
        assert images[name]["l1"] < copy["l1"] and images[name]["ssim"] > copy["ssim"], name


def test_demo_starts_from_the_shipped_base_with_fixed_steps(tmp_path):
    from jointportrait.demo.runner import DEFAULT_STEPS, STAGE_SHARES, DemoConfig, _train_config
    from jointportrait.loading import shipped_base_path

    cfg = DemoConfig()
    assert cfg.size == 64 and cfg.minutes is None
    assert {s: cfg.stage_budget(s) for s in DEFAULT_STEPS} == {s: (n, None) for s, n in DEFAULT_STEPS.items()}
    # equal training: each separate network gets the joint model's stage 1 + stage 2
    assert DEFAULT_STEPS["image_to_depth"] == DEFAULT_STEPS["stage1"] + DEFAULT_STEPS["stage2"]
    assert DemoConfig(minutes=10).stage_budget("stage2")[1] == 10 * STAGE_SHARES["stage2"]
    assert DemoConfig(steps=7).stage_budget("stage1") == (7, None)
    model = _train_config("joint", tmp_path, cfg, 10, None)["model"]
    assert model["base"] == str(shipped_base_path()) and model["image_encoder"] == "none"
