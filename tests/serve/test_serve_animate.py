"""The web demo's animation tab (paper Sec. 5.5): the handler gives what ``jointportrait animate`` writes, bit for
bit, for uploaded depth maps, frames and a video; driving uploads are checked by content; the tab is shown only
for a model with motion modules, and its API endpoint answers like the handler."""

from __future__ import annotations

import dataclasses
import socket
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from gradio_client import Client, handle_file

from jointportrait.cli.main import main
from jointportrait.errors import InputError
from jointportrait.io import save_depth_png16
from jointportrait.serve import handlers
from jointportrait.serve.app import build_app, launch
from jointportrait.serve.limits import UploadLimits, check_depth_upload, driving_upload_kind
from jointportrait.tracking.video import write_video

FAST = {"clip_length": 3, "motion_frames": 1, "steps": 2}
CLI_FAST = ["--steps", "2", "--clip-length", "3", "--motion-frames", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def video_ctx(tiny_video_model_dir):
    """A server context on the saved tiny video model: the image pipeline and the video pipeline share modules."""
    from jointportrait.serve.context import ServeContext, load_serve_pipelines
    from jointportrait.serve.workspace import Workspace

    workspace = Workspace()
    pipe, video_pipe = load_serve_pipelines(tiny_video_model_dir, False, "cpu", torch.float32)
    assert video_pipe is not None and pipe.unet is video_pipe.unet
    yield ServeContext(pipe, workspace, tiny=True, model_name="tiny video", video_pipe=video_pipe)
    workspace.close()


@pytest.fixture(scope="module")
def driving(tmp_path_factory, moving_sphere_depths) -> Path:
    """``depth/`` (5 .npy), ``png16/`` (the same as 16-bit PNG), ``frames/`` (3 PNG) and ``clip.mp4``."""
    root = tmp_path_factory.mktemp("driving")
    for name in ("depth", "png16", "frames"):
        (root / name).mkdir()
    for i, d in enumerate(moving_sphere_depths):
        np.save(root / "depth" / f"f{i:03d}.npy", d)
        save_depth_png16(root / "png16" / f"f{i:03d}.png", d / 60.0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        PIL.Image.fromarray(frame).save(root / "frames" / f"{i}.png")
    write_video(root / "clip.mp4", np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2), 25.0)
    return root


def cli_animate(model: Path, reference: Path, source: Path, out: Path, *extra: str) -> Path:
    assert main(["animate", "--model", str(model), "--reference", str(reference), "--driving", str(source),
                 "--out", str(out), *CLI_FAST, *extra]) == 0
    return out


def assert_same_frames(view: handlers.AnimationView, out: Path) -> None:
    """The handler's frames equal the CLI's files, and frames.zip holds the same files."""
    n = len(view.animation.images)
    assert sorted(p.name for p in (out / "frames").iterdir()) == sorted(
        f"{i:04d}_{kind}" for i in range(n) for kind in ("rgb.png", "depth.npy"))
    for i in range(n):
        rgb = np.asarray(PIL.Image.open(out / "frames" / f"{i:04d}_rgb.png"))
        np.testing.assert_array_equal(handlers.rgb_frames(view.animation)[i], rgb)
        np.testing.assert_array_equal(view.animation.depths[i], np.load(out / "frames" / f"{i:04d}_depth.npy"))
    with zipfile.ZipFile(view.files[-1]) as archive:
        assert sorted(archive.namelist()) == sorted(f"frames/{p.name}" for p in (out / "frames").iterdir())
        last = f"{n - 1:04d}_rgb.png"
        assert archive.read(f"frames/{last}") == (out / "frames" / last).read_bytes()


def test_depth_maps_animate_as_the_animate_command(video_ctx, photo, driving, tiny_video_model_dir, tmp_path):
    uploads = sorted((driving / "depth").iterdir(), reverse=True)  # taken in file-name order, as the CLI sorts
    seen = []
    view = handlers.animate_tab(video_ctx, photo, uploads, seed=3, progress=lambda f, d: seen.append((f, d)),
                                **FAST)
    out = cli_animate(tiny_video_model_dir, photo, driving / "depth", tmp_path / "cli", "--seed", "3")
    assert_same_frames(view, out)
    assert view.animation.clip_starts == [0, 3] and view.driving.kind == "depth"
    assert [p.name for p in view.files] == ["animation.mp4", "animation_rgb.mp4", "animation_depth.mp4",
                                            "frames.zip"]
    assert view.files[0].read_bytes() == (out / "animation.mp4").read_bytes()  # side by side, as the CLI
    assert all(p.parent.parent == video_ctx.workspace.calls_dir for p in view.files)
    assert "5 frames in 2 clips of 3 (1 motion frame), driven by uploaded depth maps" in view.summary
    assert f"seam score {view.animation.seam.score:.3f}" in view.summary
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and seen[-1] == (1.0, "done")

    # 16-bit PNG depth maps are depth too; the first frames only
    png = handlers.animate_tab(video_ctx, photo, sorted((driving / "png16").iterdir()), num_frames=2, **FAST)
    assert len(png.animation.images) == 2 and png.driving.kind == "depth"


def test_frames_and_a_video_get_their_depth_estimated_as_the_animate_command(video_ctx, photo, driving,
                                                                             tiny_video_model_dir, tmp_path):
    frames = handlers.animate_tab(video_ctx, photo, sorted((driving / "frames").iterdir()), **FAST)
    assert frames.driving.kind == "video" and "depth estimated from each frame" in frames.summary
    assert_same_frames(frames, cli_animate(tiny_video_model_dir, photo, driving / "frames", tmp_path / "f"))

    clip = handlers.animate_tab(video_ctx, photo, [driving / "clip.mp4"], num_frames=2, **FAST)
    assert len(clip.animation.images) == 2
    assert_same_frames(clip, cli_animate(tiny_video_model_dir, photo, driving / "clip.mp4", tmp_path / "v",
                                         "--num-frames", "2"))


def test_independent_clips_and_same_seed_same_video(video_ctx, photo, driving):
    uploads = sorted((driving / "depth").iterdir())
    a = handlers.animate_tab(video_ctx, photo, uploads, seed=1, **FAST)
    b = handlers.animate_tab(video_ctx, photo, uploads, seed=1, **FAST)
    np.testing.assert_array_equal(a.animation.images, b.animation.images)
    apart = handlers.animate_tab(video_ctx, photo, uploads, seed=1, independent_clips=True, **FAST)
    np.testing.assert_array_equal(apart.animation.images[:3], a.animation.images[:3])  # the first clip is the same
    assert not np.array_equal(apart.animation.images[3:], a.animation.images[3:])
    assert "independent clips" in apart.summary


def _npy_claiming(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> Path:
    """A .npy whose header claims ``shape`` but which holds almost no data (a decompression bomb of sorts)."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    return path


def test_bad_driving_uploads_are_named_without_server_paths(video_ctx, photo, driving, text_as_png, tmp_path,
                                                            monkeypatch):
    depth = sorted((driving / "depth").iterdir())
    notes = tmp_path / "notes.npy"
    notes.write_text("not an array\n" * 10)
    np.save(tmp_path / "cube.npy", np.zeros((4, 16, 16), np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    bomb = _npy_claiming(tmp_path / "bomb.npy", (100_000, 100_000))
    frame = sorted((driving / "frames").iterdir())[0]
    cases = [
        ([], "driving: upload depth maps, frames or a video first"),
        ([notes], "driving file notes.npy: not a depth map (.npy, 16-bit PNG), a frame (PNG, JPEG), a video"),
        ([text_as_png], "driving file notes.png: not a depth map"),
        ([*depth[:2], frame], "driving: the files mix depth and frame files"),
        ([tmp_path / "cube.npy"], "driving file cube.npy: a depth map must be one 2-D array, this .npy has shape"),
        ([tmp_path / "objects.npy"], "driving file objects.npy: a depth map must hold numbers"),
        ([bomb], "driving file bomb.npy: 100000 x 100000 pixels is more than the limit"),
        ([driving / "clip.mp4", driving / "clip.mp4"], "driving: 2 videos; upload one"),
        (depth * 10, f"driving: 50 files; at most {handlers.MAX_FRAMES} frames per animation"),
    ]
    before = {p.name for p in video_ctx.workspace.calls_dir.iterdir()}
    for uploads, message in cases:
        with pytest.raises(InputError) as err:
            handlers.animate_tab(video_ctx, photo, uploads, **FAST)
        assert str(err.value).startswith(message), (uploads, str(err.value))
        assert str(tmp_path) not in str(err.value) and str(video_ctx.workspace.root) not in str(err.value)
    with pytest.raises(InputError, match="^frames: the driving upload has 5 frames, 6 were asked$"):
        handlers.animate_tab(video_ctx, photo, depth, num_frames=6, **FAST)
    with pytest.raises(InputError, match="^motion frames must be between 0 and 3, got 4$"):
        handlers.animate_tab(video_ctx, photo, depth, clip_length=3, motion_frames=4)
    with pytest.raises(InputError, match="^reference: not a PNG, JPEG or WebP image"):
        handlers.animate_tab(video_ctx, text_as_png, depth, **FAST)
    monkeypatch.setattr(handlers, "MAX_VIDEO_PIXELS", 100)
    with pytest.raises(InputError, match=r"^driving video clip.mp4: 112 x 80 pixels is more than the limit of 100"):
        handlers.animate_tab(video_ctx, photo, [driving / "clip.mp4"], **FAST)
    # depth maps of different sizes: the library's message, with the upload named instead of the server folder
    np.save(tmp_path / "small.npy", np.ones((20, 20), np.float32))
    with pytest.raises(InputError, match="^driving: depth maps differ in size$"):
        handlers.animate_tab(video_ctx, photo, [depth[0], tmp_path / "small.npy"], **FAST)
    # failed calls leave only their staged uploads (removed with the other call folders)
    assert {p.name for p in video_ctx.workspace.calls_dir.iterdir()} >= before


def test_driving_kinds_by_content(driving, tmp_path):
    limits = UploadLimits()
    renamed = tmp_path / "depth.png"
    renamed.write_bytes((driving / "depth" / "f000.npy").read_bytes())  # a .npy named .png is a depth map
    assert driving_upload_kind(renamed, limits, "x") == "depth"
    assert driving_upload_kind(driving / "png16" / "f000.png", limits, "x") == "depth"
    assert driving_upload_kind(driving / "frames" / "0.png", limits, "x") == "frame"
    movie = tmp_path / "movie.png"
    movie.write_bytes((driving / "clip.mp4").read_bytes())
    assert driving_upload_kind(movie, limits, "x") == "video"
    with pytest.raises(InputError, match="^x: not a depth map: depth comes as .npy or 16-bit PNG"):
        check_depth_upload(driving / "frames" / "0.png", limits, "x")
    assert check_depth_upload(driving / "png16" / "f000.png", limits, "x").format == "PNG"


def test_the_tab_needs_motion_modules(serve_ctx, video_ctx, photo, driving):
    with pytest.raises(InputError, match="^this model has no motion modules"):
        handlers.animate_tab(serve_ctx, photo, sorted((driving / "depth").iterdir()), **FAST)
    assert not serve_ctx.has_motion and video_ctx.has_motion and "motion modules" in video_ctx.describe()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(video_ctx.workspace.gradio_dir))
        config = build_app(video_ctx).get_config_file()
    labels = [c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"]
    assert labels == ["Depth estimation", "Relighting", "Depth-based editing", "Joint generation", "Animation"]


def test_animate_over_the_api_equals_the_handler(video_ctx, photo, driving, tmp_path):
    ctx = dataclasses.replace(video_ctx, limits=UploadLimits(max_bytes=300_000))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(ctx.workspace.gradio_dir))
        demo = launch(ctx, "127.0.0.1", port, max_queue=2)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "downloads"))
            assert "/animate" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
            uploads = [handle_file(str(p)) for p in sorted((driving / "depth").iterdir())]
            video, depth_video, summary, files = client.predict(
                handle_file(str(photo)), uploads, 4, 3, 1, False, 2, 1, 25, 5, api_name="/animate")
        finally:
            demo.close()
    direct = handlers.animate_tab(video_ctx, photo, sorted((driving / "depth").iterdir()), num_frames=4, seed=5,
                                  **FAST)
    assert summary == direct.summary
    names = sorted(Path(f).name for f in files)
    assert names == sorted(p.name for p in direct.files)
    zipped = next(Path(f) for f in files if Path(f).name == "frames.zip")
    with zipfile.ZipFile(zipped) as a, zipfile.ZipFile(direct.files[-1]) as b:
        assert a.read("frames/0003_rgb.png") == b.read("frames/0003_rgb.png")
    assert Path(video["video"] if isinstance(video, dict) else video).stat().st_size > 0
