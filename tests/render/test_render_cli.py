"""``jointportrait render-depth`` and ``jointportrait synth`` end to end, including their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jointportrait.cli.main import main


def _camera(name=None, tz=10.0):
    # camera at the world origin looking down +z (OpenCV), the box's front face at z = tz - 1
    cam = {"intrinsics": [[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]],
           "world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, tz], [0, 0, 0, 1]], "width": 32, "height": 24}
    return cam | ({"name": name} if name else {})


@pytest.fixture
def box_obj(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    path = tmp_path / "box.obj"
    trimesh.creation.box(extents=(2.0, 2.0, 2.0)).export(path)
    return path


def test_render_depth_writes_exact_depth_preview_and_mask(tmp_path, box_obj, capsys):
    cams = tmp_path / "cams.json"
    cams.write_text(json.dumps([_camera("front"), _camera("far", tz=20.0)]))
    out = tmp_path / "out"
    assert main(["render-depth", "--mesh", str(box_obj), "--camera", str(cams), "--out", str(out)]) == 0
    near = np.load(out / "box_front_depth.npy")
    far = np.load(out / "box_far_depth.npy")
    assert near.dtype == np.float32 and near.shape == (24, 32)
    # the box's face z = -1 (world) is at camera z = 9; the centre pixel (15.5, 11.5) has neighbours on it
    np.testing.assert_allclose(near[11:13, 15:17], 9.0, rtol=1e-6)
    np.testing.assert_allclose(far[11:13, 15:17], 19.0, rtol=1e-6)
    mask = np.asarray(Image.open(out / "box_front_mask.png"))
    # face half-width 1 at z = 9 -> 40 / 9 = 4.44 px: columns 11.06..19.94 -> 12..19 covered
    assert mask[11].nonzero()[0].tolist() == list(range(12, 20))
    assert ((near > 0) == (mask == 255)).all()
    preview = np.asarray(Image.open(out / "box_front_depth.png"))
    assert preview.dtype == np.uint16 and preview[12, 16] > 0 and preview[0, 0] == 0
    assert "wrote 2 depth map(s)" in capsys.readouterr().out
    # existing outputs are kept unless --overwrite
    assert main(["render-depth", "--mesh", str(box_obj), "--camera", str(cams), "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ({"intrinsics": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "width": 4, "height": 4}, "camera lacks world_to_camera"),
        (_camera() | {"width": 0}, "'width' must be an integer"),
        (_camera() | {"intrinsics": [[1, 0], [0, 1]]}, "'intrinsics' must be a 3x3"),
    ],
)
def test_render_depth_bad_camera_is_one_line(tmp_path, box_obj, capsys, camera, message):
    cams = tmp_path / "cams.json"
    cams.write_text(json.dumps(camera))
    assert main(["render-depth", "--mesh", str(box_obj), "--camera", str(cams), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "cams.json camera 0" in err and err.count("\n") == 1


def test_render_depth_bad_mesh_is_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.ply"
    bad.write_text("ply\nformat nonsense\n")
    cams = tmp_path / "cams.json"
    cams.write_text(json.dumps(_camera()))
    assert main(["render-depth", "--mesh", str(bad), "--camera", str(cams), "--out", str(tmp_path / "o")]) == 2
    assert "broken.ply" in capsys.readouterr().err


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["synth", "--out", str(out), "--subjects", "2", "--frames-per-subject", "1", "--size", "16",
            "--face-model", str(tmp_path / "missing.npz")]
    assert main(args) == 2  # an explicit face model path must exist
    assert "missing.npz" in capsys.readouterr().err
    args = args[:-2]
    assert main(args + ["--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "face model:" in printed and "wrote 2 frames" in printed
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2
    assert main(args) == 2  # non-empty output folder
    assert main(args[:-2] + ["--size", "20"]) == 2
