"""``--face-crop`` on the image commands with a real photo: the result lands where the face is and has the
input's size; no face, several faces and a missing extra are one-line errors that write nothing."""

from __future__ import annotations

import sys

import numpy as np
import PIL.Image
import pytest

from jointportrait.cli.face_crop import face_detector
from jointportrait.cli.main import main
from jointportrait.faces import FaceCrop

FAST = ["--steps", "1", "--processing-resolution", "32", "--face-crop", "--crop-size", "32"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    """The astronaut's face off-centre in a wider frame (300 x 420), as a holiday photo would have it."""
    root = tmp_path_factory.mktemp("face_crop")
    frame = np.full((300, 420, 3), 90, np.uint8)
    frame[20:280, 200:410] = astronaut[10:270, 120:330]
    PIL.Image.fromarray(frame).save(root / "me.png")
    return root / "me.png"


def _crop(detector, path) -> FaceCrop:
    image = np.asarray(PIL.Image.open(path).convert("RGB"))
    return FaceCrop.from_landmarks(detector.detect(image)[0].landmarks, *image.shape[:2], size=32)


def test_estimate_depth_face_crop_round_trip(tmp_path, photo, tiny_model_dir, detector):
    out = tmp_path / "out"
    assert main(["estimate-depth", "--image", str(photo), "--model", str(tiny_model_dir), "--out", str(out),
                 *FAST]) == 0
    depth = np.load(out / "me_depth.npy")
    assert depth.shape == (300, 420)  # the input's size
    crop = _crop(detector, photo)
    covered = crop.mask()
    # depth exactly on the face's crop box, which holds the face: NaN (no data) everywhere else
    np.testing.assert_array_equal(np.isfinite(depth), covered)
    rows, cols = np.nonzero(covered)
    assert cols.min() >= 200 and cols.max() < 410 and rows.min() < 100 < rows.max()
    landmarks = detector.detect(np.asarray(PIL.Image.open(photo)))[0].landmarks.astype(int)
    assert covered[landmarks[:, 1], landmarks[:, 0]].all()
    for name in ("me_depth.png", "me_depth_color.png", "me_normals.png"):
        image = np.asarray(PIL.Image.open(out / name))
        assert image.shape[:2] == (300, 420) and not image[~covered].any()  # no data there


def test_other_commands_keep_the_input_size(tmp_path, photo, tiny_model_dir, detector):
    model = ["--model", str(tiny_model_dir)]
    relit = tmp_path / "relit"
    assert main(["relight", "--image", str(photo), *model, "--out", str(relit), *FAST]) == 0
    original = np.asarray(PIL.Image.open(photo))
    result = np.asarray(PIL.Image.open(relit / "me_relit.png"))
    covered = _crop(detector, photo).mask()
    assert result.shape == original.shape
    np.testing.assert_array_equal(result[~covered], original[~covered])  # relit only where depth was estimated
    assert np.abs(result[covered].astype(int) - original[covered]).mean() > 1.0

    depth = np.where(covered, 0.5, np.nan).astype(np.float32)  # what estimate-depth --face-crop writes
    np.save(tmp_path / "me_depth.npy", depth)
    portraits = tmp_path / "portraits"
    assert main(["depth-to-image", "--depth", str(tmp_path / "me_depth.npy"), "--reference", str(photo), *model,
                 "--out", str(portraits), *FAST]) == 0
    pasted = np.asarray(PIL.Image.open(portraits / "me_image_00.png"))
    assert pasted.shape == original.shape
    np.testing.assert_array_equal(pasted[~covered], original[~covered])

    edited = np.where(covered, 0.4, np.nan).astype(np.float32)
    np.save(tmp_path / "me_edited.npy", edited)
    edit = tmp_path / "edit"
    assert main(["edit", "--image", str(photo), "--edited-depth", str(tmp_path / "me_edited.npy"), "--depth",
                 str(tmp_path / "me_depth.npy"), *model, "--out", str(edit), *FAST]) == 0
    assert np.asarray(PIL.Image.open(edit / "me_edit.png")).shape == original.shape

    samples = tmp_path / "samples"
    assert main(["generate", "--reference", str(photo), *model, "--out", str(samples), "--steps", "1",
                 "--size", "32", "--face-crop", "--crop-size", "32"]) == 0
    assert np.asarray(PIL.Image.open(samples / "me_00.png")).shape == (32, 32, 3)


def test_face_crop_errors_write_nothing(tmp_path, photo, astronaut, tiny_model_dir, capsys, monkeypatch):
    model = ["--model", str(tiny_model_dir)]
    grey = tmp_path / "grey.png"
    PIL.Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(grey)
    out = tmp_path / "out"
    assert main(["estimate-depth", "--image", str(grey), *model, "--out", str(out), *FAST]) == 2
    assert capsys.readouterr().err.strip() == f"error: {grey}: no face found"
    assert not any(out.glob("*"))

    two = np.full((240, 400, 3), 200, np.uint8)  # two faces: the larger on the left
    two[20:216, 5:215] = np.asarray(PIL.Image.fromarray(astronaut[60:200, 150:300]).resize((210, 196)))
    two[50:190, 240:390] = astronaut[60:200, 150:300]
    PIL.Image.fromarray(two).save(tmp_path / "two.png")
    assert main(["estimate-depth", "--image", str(tmp_path / "two.png"), *model, "--out", str(out), *FAST,
                 "--face-index", "1"]) == 0
    assert "2 faces found; cropping index 1" in capsys.readouterr().out
    depth = np.load(out / "two_depth.npy")
    assert np.isfinite(depth[:, 300]).any() and not np.isfinite(depth[:, 60]).any()  # the right-hand face
    assert main(["estimate-depth", "--image", str(tmp_path / "two.png"), *model, "--out", str(out), *FAST,
                 "--face-index", "2", "--overwrite"]) == 2
    assert "face index 2 asked for, but only 2 face(s) found" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out / "two_depth.npy"), depth)  # the earlier output is untouched

    face_detector.cache_clear()  # a fresh process, where the extra is missing
    monkeypatch.setitem(sys.modules, "dlib", None)
    assert main(["estimate-depth", "--image", str(photo), *model, "--out", str(tmp_path / "none"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "optional extra 'faces'" in err and "\n" not in err and not (tmp_path / "none").exists()


def test_export_face_crop_keeps_only_the_face(tmp_path, photo, tiny_model_dir, detector):
    """``export --face-crop`` estimates depth on the crop: the point cloud holds the crop's pixels, no others."""
    import trimesh

    out = tmp_path / "exported"
    assert main(["export", "--image", str(photo), "--model", str(tiny_model_dir), "--out", str(out), *FAST,
                 "--format", "ply"]) == 0
    points = trimesh.load(out / "me.ply").vertices
    covered = int(_crop(detector, photo).mask().sum())
    assert 0.5 * covered < len(points) <= covered  # pixels outside the crop have no depth and no point
