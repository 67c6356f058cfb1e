"""Every application command end to end on tiny models, with the input cases users have and the bad ones."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import trimesh

from jointportrait.cli.main import main

STEPS = ["--steps", "1", "--processing-resolution", "32"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of photos as users have them, plus a truncated one; and some depth/mask files."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    photos = root / "photos"
    photos.mkdir()
    rgb = rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)
    PIL.Image.fromarray(rgb).save(photos / "a_plain.jpg")
    PIL.Image.fromarray(np.dstack([rgb, np.full((30, 44), 128, np.uint8)])).save(photos / "b_rgba.png")
    PIL.Image.fromarray(rgb[..., 0]).save(photos / "c_gray.webp")
    PIL.Image.fromarray((rng.integers(0, 65535, (21, 17))).astype(np.uint16)).save(photos / "d_16bit.png")
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise on display -> shown as 44 x 30 (W x H) -> 30 wide
    PIL.Image.fromarray(rgb).save(photos / "e_exif.jpg", exif=exif)
    good = (photos / "a_plain.jpg").read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "bad" / "empty.png").write_bytes(b"")
    PIL.Image.fromarray(rgb).save(root / "bad" / "ok.png")
    depth = np.tile(np.linspace(0.0, 1.0, 44, dtype=np.float32), (30, 1))
    np.save(root / "depth.npy", depth)
    nan_depth = depth.copy()
    nan_depth[3, 3] = np.nan
    np.save(root / "nan_depth.npy", nan_depth)
    edited = depth.copy()
    edited[5:15, 10:20] -= 0.4
    np.save(root / "edited.npy", edited)
    mask = np.zeros((30, 44), np.uint8)
    mask[5:15, 10:20] = 255
    PIL.Image.fromarray(mask).save(root / "mask.png")
    PIL.Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "small_mask.png")
    return root


def _size(path):
    with PIL.Image.open(path) as im:
        return im.size


def test_estimate_depth_folder_of_user_photos(inputs, tiny_model_dir, tmp_path, caplog):
    out = tmp_path / "out"
    assert main(["estimate-depth", "--image", str(inputs / "photos"), "--model", str(tiny_model_dir),
                 "--out", str(out), *STEPS]) == 0
    expected_sizes = {"a_plain": (44, 30), "b_rgba": (44, 30), "c_gray": (44, 30), "d_16bit": (17, 21),
                      "e_exif": (30, 44)}
    for stem, (w, h) in expected_sizes.items():
        depth = np.load(out / f"{stem}_depth.npy")
        assert depth.shape == (h, w) and depth.dtype == np.float32  # output at the (EXIF-rotated) input size
        with PIL.Image.open(out / f"{stem}_depth.png") as im:
            assert im.mode.startswith("I;16") or im.mode == "I"
        assert _size(out / f"{stem}_depth_color.png") == _size(out / f"{stem}_normals.png") == (w, h)
    assert "latent replacement" in caplog.text  # the 8-channel model says how it inpaints


def test_stage2_commands(inputs, tiny_stage2_model_dir, tmp_path):
    model = ["--model", str(tiny_stage2_model_dir), "--out", str(tmp_path)]
    photo = str(inputs / "photos" / "a_plain.jpg")
    assert main(["estimate-depth", "--image", photo, *model, *STEPS, "--inpaint-mode", "conditioning",
                 "--ensemble", "2"]) == 0
    assert np.load(tmp_path / "a_plain_uncertainty.npy").shape == (30, 44)
    assert main(["depth-to-image", "--depth", str(tmp_path / "a_plain_depth.npy"), "--reference", photo, *model,
                 *STEPS, "--num-samples", "2"]) == 0
    assert _size(tmp_path / "a_plain_image_00.png") == _size(tmp_path / "a_plain_image_01.png") == (44, 30)
    assert main(["edit", "--image", photo, "--edited-depth", str(inputs / "edited.npy"),
                 "--mask", str(inputs / "mask.png"), *model, *STEPS]) == 0
    before = np.asarray(PIL.Image.open(photo))
    after = np.asarray(PIL.Image.open(tmp_path / "a_plain_edit.png"))
    outside = np.asarray(PIL.Image.open(inputs / "mask.png")) == 0
    np.testing.assert_array_equal(after[outside], before[outside])
    assert main(["generate", "--reference", photo, "--model", str(tiny_stage2_model_dir), "--out",
                 str(tmp_path / "generated"), "--steps", "1", "--size", "32"]) == 0
    assert np.load(tmp_path / "generated" / "a_plain_00_depth.npy").shape == (32, 32)


def test_edit_mask_from_estimated_depth_and_relight_export(inputs, tiny_model_dir, tmp_path):
    photo = str(inputs / "photos" / "a_plain.jpg")
    model = ["--model", str(tiny_model_dir), "--out", str(tmp_path)]
    assert main(["edit", "--image", photo, "--edited-depth", str(inputs / "edited.npy"), *model, *STEPS]) == 0
    assert _size(tmp_path / "a_plain_edit.png") == (44, 30)
    assert main(["relight", "--image", photo, *model, *STEPS, "--mode", "ratio", "--orthographic"]) == 0
    for kind in ("relit", "shading", "normals"):
        assert _size(tmp_path / f"a_plain_{kind}.png") == (44, 30)
    assert main(["export", "--image", photo, *model, *STEPS, "--format", "glb", "--mesh"]) == 0
    assert len(trimesh.load(tmp_path / "a_plain.glb", force="mesh").faces) > 0


def test_relight_and_export_from_given_depth_without_model(inputs, tmp_path):
    photo = str(inputs / "photos" / "a_plain.jpg")
    depth = str(inputs / "depth.npy")
    assert main(["relight", "--image", photo, "--depth", depth, "--out", str(tmp_path),
                 "--sh", "1,0,0.5,0,0,0,0,0,0"]) == 0
    assert main(["export", "--image", photo, "--depth", depth, "--out", str(tmp_path),
                 "--intrinsics", "50,50,22,15"]) == 0
    cloud = trimesh.load(tmp_path / "a_plain.ply")
    assert len(cloud.vertices) == 30 * 44  # one point per valid pixel
    assert main(["export", "--image", photo, "--depth", depth, "--out", str(tmp_path), "--mesh",
                 "--format", "obj"]) == 0
    assert len(trimesh.load(tmp_path / "a_plain.obj", force="mesh").faces) == 2 * 29 * 43


def test_folder_batch_reports_bad_files_and_processes_the_rest(inputs, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["estimate-depth", "--image", str(inputs / "bad"), "--model", str(tiny_model_dir),
                   "--out", str(out), *STEPS])
    err = capsys.readouterr().err
    assert status == 1
    assert "truncated.jpg" in err and "empty.png" in err
    assert (out / "ok_depth.npy").exists() and not (out / "truncated_depth.npy").exists()


@pytest.mark.parametrize("case", ["missing", "truncated", "empty", "nan_depth", "mask_size", "no_depth_source"])
def test_bad_input_is_one_line_naming_the_file(case, inputs, tiny_model_dir, tmp_path, capsys):
    photo = str(inputs / "photos" / "a_plain.jpg")
    model = ["--model", str(tiny_model_dir), "--out", str(tmp_path), *STEPS]
    argv, name = {
        "missing": (["estimate-depth", "--image", str(inputs / "nope.jpg"), *model], "nope.jpg"),
        "truncated": (["estimate-depth", "--image", str(inputs / "bad" / "truncated.jpg"), *model], "truncated.jpg"),
        "empty": (["relight", "--image", str(inputs / "bad" / "empty.png"), "--depth", str(inputs / "depth.npy"),
                   "--out", str(tmp_path)], "empty.png"),
        "nan_depth": (["depth-to-image", "--depth", str(inputs / "nan_depth.npy"), "--reference", photo, *model],
                      "nan_depth.npy"),
        "mask_size": (["edit", "--image", photo, "--edited-depth", str(inputs / "edited.npy"),
                       "--mask", str(inputs / "small_mask.png"), *model], "small_mask.png"),
        "no_depth_source": (["export", "--image", photo, "--out", str(tmp_path)], "--depth"),
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and name in err[0]
    assert not any(tmp_path.glob("*.png")) and not any(tmp_path.glob("*.npy"))


def test_existing_outputs_are_kept_unless_overwrite(inputs, tmp_path, capsys):
    photo = str(inputs / "photos" / "a_plain.jpg")
    argv = ["relight", "--image", photo, "--depth", str(inputs / "depth.npy"), "--out", str(tmp_path)]
    (tmp_path / "a_plain_relit.png").write_bytes(b"user data")
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "a_plain_relit.png").read_bytes() == b"user data"
    assert not (tmp_path / "a_plain_shading.png").exists()  # refused before writing anything
    assert main([*argv, "--overwrite"]) == 0
    assert _size(tmp_path / "a_plain_relit.png") == (44, 30)
