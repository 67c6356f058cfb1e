"""``estimate-depth --batch-size``: a folder estimated several photos per model call (issue 17)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from jointportrait.applications.depth_estimation import VAE_TILING
from jointportrait.cli import options
from jointportrait.cli.main import main

STEPS = ["--steps", "2", "--processing-resolution", "32", "--ensemble", "2"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five photos of two sizes and one unreadable file."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, hw in enumerate([(32, 32), (24, 32), (32, 32), (32, 32), (24, 32)]):
        PIL.Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    (root / "p2b_broken.png").write_bytes(b"not a png")
    return root


def test_batches_write_what_one_at_a_time_writes(folder, tiny_stage2_model_dir, tmp_path, capsys):
    model = ["--model", str(tiny_stage2_model_dir)]
    assert main(["estimate-depth", "--image", str(folder), *model, "--out", str(tmp_path / "one"), *STEPS]) == 1
    assert main(["estimate-depth", "--image", str(folder), *model, "--out", str(tmp_path / "three"), *STEPS,
                 "--batch-size", "3"]) == 1  # the broken file fails alone, in both runs
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("p2b_broken.png" in line for line in errors)
    for i in range(5):
        one, three = (np.load(tmp_path / d / f"p{i}_depth.npy") for d in ("one", "three"))
        np.testing.assert_allclose(three, one, atol=1e-4)
        assert (tmp_path / "three" / f"p{i}_uncertainty.npy").exists()
    assert not (tmp_path / "three" / "p2b_broken_depth.npy").exists()


def test_existing_outputs_are_refused_before_the_batch_runs(folder, tiny_stage2_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "p1_depth.npy").write_bytes(b"keep me")
    code = main(["estimate-depth", "--image", str(folder), "--model", str(tiny_stage2_model_dir), "--out", str(out),
                 *STEPS, "--batch-size", "4"])
    assert code == 1
    assert (out / "p1_depth.npy").read_bytes() == b"keep me"  # never overwritten
    assert (out / "p0_depth.npy").exists() and (out / "p3_depth.npy").exists()  # the others were estimated
    assert "p1_depth.npy" in capsys.readouterr().err


def test_bad_batch_size_and_the_option_lists(tiny_stage2_model_dir, folder, tmp_path):
    with pytest.raises(SystemExit):
        main(["estimate-depth", "--image", str(folder), "--model", str(tiny_stage2_model_dir),
              "--out", str(tmp_path), "--vae-tiling", "sometimes"])
    assert main(["estimate-depth", "--image", str(folder / "p0.png"), "--model", str(tiny_stage2_model_dir),
                 "--out", str(tmp_path), "--batch-size", "0"]) == 2
    assert options.VAE_TILING == VAE_TILING  # written out in options.py so that --help loads no torch


def test_channels_last_gives_the_same_depth(folder, tiny_stage2_model_dir, tmp_path):
    args = ["estimate-depth", "--image", str(folder / "p0.png"), "--model", str(tiny_stage2_model_dir), *STEPS]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--channels-last"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "b" / "p0_depth.npy"), np.load(tmp_path / "a" / "p0_depth.npy"),
                               atol=1e-4)
