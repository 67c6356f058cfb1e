"""The web demo's handlers, called directly: same results as the CLI, checked inputs, per-call files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from jointportrait.applications.editing import edit_with_depth, mask_from_depth_edit, push_pull_depth
from jointportrait.cli.main import main
from jointportrait.errors import InputError
from jointportrait.io import load_depth
from jointportrait.serve import handlers


def cli(*args: str) -> None:
    """Run a ``jointportrait`` command (the CLI the handlers must agree with)."""
    assert main(list(args)) == 0


def test_depth_tab_matches_estimate_depth_and_export_commands(serve_ctx, photo, tiny_model_dir, tmp_path):
    view = handlers.depth_tab(serve_ctx, photo, steps=2, ensemble=1, geometry="mesh", seed=3)
    names = [p.name for p in view.files]
    assert names == ["portrait_depth.npy", "portrait_depth.png", "portrait_depth_color.png", "portrait_normals.png",
                     "portrait_mesh.ply", "portrait_mesh.glb"]
    assert all(p.parent.parent == serve_ctx.workspace.calls_dir for p in view.files)
    assert view.depth.shape == view.grey.shape == (96, 80) and view.color.shape == view.normals.shape == (96, 80, 3)

    out = tmp_path / "cli"
    cli("estimate-depth", "--image", str(photo), "--model", str(tiny_model_dir), "--out", str(out),
        "--steps", "2", "--seed", "3")
    np.testing.assert_array_equal(np.load(view.files[0]), np.load(out / "photo_depth.npy"))
    np.testing.assert_array_equal(load_depth(view.files[1]), load_depth(out / "photo_depth.png"))
    np.testing.assert_array_equal(view.normals, np.asarray(Image.open(out / "photo_normals.png")))
    np.testing.assert_array_equal(view.grey, np.round(view.depth * 255).astype(np.uint8))

    cli("export", "--image", str(photo), "--depth", str(out / "photo_depth.npy"), "--mesh", "--out", str(out))
    ours, theirs = trimesh.load(view.files[4]), trimesh.load(out / "photo.ply")
    np.testing.assert_allclose(ours.vertices, theirs.vertices, atol=1e-6)
    np.testing.assert_array_equal(ours.faces, theirs.faces)
    shown = trimesh.load(view.view3d, force="mesh")  # the 3-D view: the same mesh, at most VIEW_SIDE pixels
    assert 0 < len(shown.vertices) <= len(ours.vertices)


def test_depth_tab_point_cloud_ensemble_and_progress(serve_ctx, photo):
    seen = []
    view = handlers.depth_tab(serve_ctx, photo, steps=1, ensemble=2, geometry="point cloud",
                              progress=lambda f, d: seen.append((f, d)))
    assert [p.name for p in view.files][-3:] == ["portrait_uncertainty.npy", "portrait_points.ply",
                                                 "portrait_points.glb"]
    assert isinstance(trimesh.load(view.files[-2]), trimesh.PointCloud)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and seen[-1][1] == "done"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "steps must be between 1 and 100, got 0"),
    ({"steps": 2.5}, "steps must be a whole number, got 2.5"),
    ({"ensemble": "many"}, "ensemble size must be a number, got 'many'"),
    ({"geometry": "cube"}, "3-D output must be one of 'mesh', 'point cloud', got 'cube'"),
    ({"seed": -1}, "seed must be between 0 and 4294967295, got -1"),
    ({"resolution": float("nan")}, "processing resolution must be between 0 and 2048, got nan"),
])
def test_out_of_range_controls_are_named(serve_ctx, photo, kwargs, message):
    with pytest.raises(InputError) as err:
        handlers.depth_tab(serve_ctx, photo, **kwargs)
    assert str(err.value) == message


def test_bad_upload_is_a_message_and_writes_nothing(serve_ctx, text_as_png):
    before = set(serve_ctx.workspace.calls_dir.iterdir())
    with pytest.raises(InputError, match="^photo: not a PNG, JPEG or WebP image"):
        handlers.depth_tab(serve_ctx, text_as_png)
    with pytest.raises(InputError, match="^reference: not a PNG, JPEG or WebP image"):
        handlers.generate_tab(serve_ctx, text_as_png)
    assert set(serve_ctx.workspace.calls_dir.iterdir()) == before


def test_large_photos_are_capped_for_3d_relighting_and_sampling(serve_ctx, photo, monkeypatch):
    monkeypatch.setattr(handlers, "EXPORT_SIDE", 48)
    monkeypatch.setattr(handlers, "VIEW_SIDE", 24)
    monkeypatch.setattr(handlers, "RELIGHT_SIDE", 40)
    view = handlers.depth_tab(serve_ctx, photo, steps=1)
    assert view.depth.shape == view.normals.shape[:2] == (96, 80)  # depth and normals: the photo's size
    assert 0 < len(trimesh.load(view.files[4]).vertices) <= 48 * 40
    assert 0 < len(trimesh.load(view.view3d, force="mesh").vertices) <= 24 * 20
    source, normal_map = handlers.relight_source(serve_ctx, photo, steps=1)
    assert normal_map.shape == source.normals.shape == (40, 33, 3)
    assert handlers.relight_tab(source)[0].shape == (40, 33, 3)
    monkeypatch.setattr(handlers, "MAX_RESOLUTION", 64)
    with pytest.raises(InputError, match="resolution 0 .* would sample at 96 px; the limit is 64"):
        handlers.depth_tab(serve_ctx, photo, resolution=0)


def test_light_direction_by_hand():
    np.testing.assert_allclose(handlers.light_direction(0, 0), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(handlers.light_direction(90, 0), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(handlers.light_direction(-90, 0), [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(handlers.light_direction(0, 90), [0, 1, 0], atol=1e-12)
    h = np.sqrt(0.5)
    np.testing.assert_allclose(handlers.light_direction(-45, 0), [-h, 0, h], atol=1e-12)
    np.testing.assert_allclose(handlers.light_direction(90, 45), [h, h, 0], atol=1e-12)


def test_relight_matches_the_relight_command(serve_ctx, photo, tmp_path):
    source, normal_map = handlers.relight_source(serve_ctx, photo, steps=2, seed=1)
    depth = handlers.depth_tab(serve_ctx, photo, steps=2, seed=1).files[0]  # the same estimate
    np.testing.assert_array_equal(normal_map, np.asarray(Image.open(depth.parent / "portrait_normals.png")))
    relit, shading = handlers.relight_tab(source, azimuth=60, elevation=-20, intensity=1.5, ambient=0.2, mode="ratio")
    x, y, z = handlers.light_direction(60, -20)
    cli("relight", "--image", str(photo), "--depth", str(depth), f"--light={float(x)!r},{float(y)!r},{float(z)!r}", "--intensity", "1.5",
        "--ambient", "0.2", "--mode", "ratio", "--out", str(tmp_path))
    np.testing.assert_array_equal(relit, np.asarray(Image.open(tmp_path / "photo_relit.png")))
    np.testing.assert_array_equal(shading, np.asarray(Image.open(tmp_path / "photo_shading.png")))
    with pytest.raises(InputError, match="upload a photo first"):
        handlers.relight_tab(None)
    with pytest.raises(InputError, match="mode must be one of 'multiply', 'ratio'"):
        handlers.relight_tab(source, mode="screen")


def painted_layer(path, size, box):
    """An RGBA brush layer: transparent, with one painted box (as the page's editor sends)."""
    layer = np.zeros(size + (4,), np.uint8)
    layer[box[0]:box[1], box[2]:box[3]] = (255, 59, 48, 255)
    Image.fromarray(layer).save(path)
    return path


def test_painted_mask_from_layers(serve_ctx, tmp_path):
    a = painted_layer(tmp_path / "a.png", (48, 40), (0, 10, 0, 10))
    b = tmp_path / "b.png"  # an opaque black-and-white mask: white = painted
    bw = np.zeros((96, 80), np.uint8)
    bw[50:60, 60:70] = 255
    Image.fromarray(bw).save(b)
    mask = handlers.painted_mask([a, b], (96, 80), serve_ctx)  # layer a is at half size: scaled up
    expected = np.zeros((96, 80), bool)
    expected[0:20, 0:20] = True
    expected[50:60, 60:70] = True
    np.testing.assert_array_equal(mask, expected)


def test_edit_tab_changes_only_the_mask_and_reuses_the_depth(serve_ctx, photo, tmp_path, monkeypatch):
    layer = painted_layer(tmp_path / "layer.png", (96, 80), (30, 60, 20, 50))
    view = handlers.edit_tab(serve_ctx, photo, [layer], offset=-0.2, steps=2, seed=5)
    image = np.asarray(Image.open(photo))
    region = np.zeros((96, 80), bool)
    region[30:60, 20:50] = True
    edited = push_pull_depth(view.memo.depth, region, -0.2, feather=handlers.FEATHER * 80)
    mask = region | mask_from_depth_edit(view.memo.depth, edited)
    np.testing.assert_array_equal(view.mask > 0, mask)
    np.testing.assert_array_equal(view.image[~mask], image[~mask])
    direct = edit_with_depth(serve_ctx.pipe, Image.open(photo).convert("RGB"), edited, mask, num_inference_steps=2,
                             processing_resolution=64, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(view.image, np.asarray(direct.image))
    assert [p.name for p in view.files] == ["portrait_edit.png", "portrait_edited_depth.npy", "portrait_edit_mask.png"]

    calls = []
    monkeypatch.setattr(handlers, "estimate_depth", lambda *a, **k: calls.append(1))
    again = handlers.edit_tab(serve_ctx, photo, [layer], offset=0.1, steps=2, seed=5, memo=view.memo)
    assert calls == [] and again.memo is view.memo  # same photo and seed: the depth is not estimated again
    blank = painted_layer(tmp_path / "blank.png", (96, 80), (0, 0, 0, 0))
    with pytest.raises(InputError, match="paint the region to change"):
        handlers.edit_tab(serve_ctx, photo, [blank], memo=view.memo)


def test_generate_tab_matches_the_generate_command(serve_ctx, photo, tiny_model_dir, tmp_path):
    view = handlers.generate_tab(serve_ctx, photo, num_samples=2, steps=2, guidance_scale=1.0, seed=4)
    assert len(view.images) == len(view.depths) == 2
    cli("generate", "--reference", str(photo), "--model", str(tiny_model_dir), "--out", str(tmp_path),
        "--num-samples", "2", "--steps", "2", "--seed", "4")
    for i in range(2):
        np.testing.assert_array_equal(view.images[i], np.asarray(Image.open(tmp_path / f"photo_{i:02d}.png")))
        np.testing.assert_array_equal(np.load(view.files[3 * i + 1]), np.load(tmp_path / f"photo_{i:02d}_depth.npy"))
    with pytest.raises(InputError, match="samples must be between 1 and 8, got 9"):
        handlers.generate_tab(serve_ctx, photo, num_samples=9)
