"""A real browser (Debian's chromium, driven by Playwright) against ``jointportrait serve --tiny --video`` on
127.0.0.1.

Depth tab (default suite): upload, depth image, screenshot; a text file renamed ``.png`` (a
message, the server keeps serving). Animation tab (default suite, same server): a reference and a
synthetic clip's depth maps, the RGB and depth videos play in the browser, screenshot. Editing tab
(``-m slow``): the real image editor's upload and brush stroke, unchanged pixels outside the
regenerated region. After each, SIGTERM must remove the server's files. Screenshots are kept in
``test-artifacts/`` (or ``$JOINTPORTRAIT_TEST_ARTIFACTS``); docs/images/serve_depth.png and
docs/images/serve_animate.png are two of them.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.face_models import load_face_model

# ENVIRONMENT.md: how Debian's chromium runs headless on these machines
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("JOINTPORTRAIT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
PHOTO_SIDE = 128
NATURAL_SIZE = "e => e && e.complete && e.naturalWidth > 0 ? [e.naturalWidth, e.naturalHeight] : null"
VIDEO_READY = "id => { const v = document.querySelector('#' + id + ' video'); return v && v.readyState >= 1; }"
ANIMATION_FRAMES = 6


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("the browser test needs Debian's chromium: apt-get install -y chromium chromium-driver "
                    "(.ci/run installs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jointportrait serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"jointportrait serve did not answer within {timeout:.0f} s:\n{log.read_text()}")


def synthetic_portrait(out: Path, face_model_path) -> Path:
    """A rendered studio portrait (the project's synthetic data; the ICT face when available)."""
    write_dataset(out, load_face_model(face_model_path), SynthConfig(subjects=1, frames_per_subject=1, size=PHOTO_SIDE, seed=2))
    return out / "images" / "s0000_f0000.png"


def synthetic_clip_depth(out: Path, face_model_path, frames: int = ANIMATION_FRAMES) -> list[Path]:
    """The depth maps (``.npy``, camera z) of a rendered synthetic clip (``jointportrait synth --video``)."""
    write_dataset(out, load_face_model(face_model_path),
                  SynthConfig(subjects=1, frames_per_subject=frames, size=64, seed=3, video=True, clip_length=frames))
    return sorted((out / "depth").glob("*.npy"))


def video_state(page, elem_id: str) -> dict | None:
    """What the browser made of a component's video: its duration and size once its metadata loaded."""
    return page.evaluate(f"""() => {{
        const v = document.querySelector('#{elem_id} video');
        return v && v.readyState >= 1 ? {{duration: v.duration, width: v.videoWidth, height: v.videoHeight}} : null;
    }}""")


def animate_in_page(page, photo: Path, depth_files: list[Path]) -> tuple[dict, dict]:
    """On the animation tab: the reference, the driving depth maps, clips of 3 frames, 2 steps; the two videos'
    states once the browser has read them."""
    page.get_by_role("tab", name="Animation").click()
    page.locator("#animate-reference input[type=file]").set_input_files(str(photo))
    page.locator("#animate-driving input[type=file]").set_input_files([str(p) for p in depth_files])
    page.wait_for_function(f"() => document.querySelectorAll('#animate-driving a[download]').length === "
                           f"{len(depth_files)}", timeout=30_000)  # every file uploaded
    page.locator("#animate-options").get_by_text("options").click()
    page.locator("#animate-steps input[type=number]").wait_for(timeout=10_000)
    wanted = {"animate-clip-length": "3", "animate-motion-frames": "1", "animate-steps": "2"}
    for _ in range(3):  # under load the opening accordion may render its sliders again: set until they hold
        for elem_id, value in wanted.items():
            number = page.locator(f"#{elem_id} input[type=number]")
            number.fill(value)
            number.blur()  # the slider takes the typed value
        page.wait_for_timeout(1000)
        if all(page.locator(f"#{e} input[type=range]").input_value() == v for e, v in wanted.items()):
            break
    assert {e: page.locator(f"#{e} input[type=range]").input_value() for e in wanted} == wanted
    page.locator("#animate-run").click()
    page.locator("#animate-files a[download='frames.zip']").wait_for(timeout=90_000)
    page.wait_for_function(f"() => ({VIDEO_READY})('animate-video') && ({VIDEO_READY})('animate-depth')",
                           timeout=30_000)
    return video_state(page, "animate-video"), video_state(page, "animate-depth")


def upload_and_wait_for_depth(page, photo: Path) -> list[int]:
    page.locator("#depth-photo input[type=file]").set_input_files(str(photo))
    page.locator("#depth-files a[download='portrait_depth.npy']").wait_for(timeout=60_000)
    depth = page.locator("#depth-grey img")
    page.wait_for_function(f"() => ({NATURAL_SIZE})(document.querySelector('#depth-grey img'))", timeout=30_000)
    return depth.evaluate(NATURAL_SIZE)


def shown_image(page, elem_id: str) -> np.ndarray:
    """The pixels of the image a component shows, fetched from the server like the browser did."""
    selector = f"#{elem_id} img"
    page.wait_for_function(f"() => ({NATURAL_SIZE})(document.querySelector('{selector}'))", timeout=60_000)
    response = httpx.get(page.locator(selector).get_attribute("src"), timeout=30)
    return np.asarray(Image.open(io.BytesIO(response.content)))


def paint_and_edit(page, photo: Path) -> tuple[np.ndarray, np.ndarray]:
    """On the editing tab: upload the photo, paint one brush stroke, run the edit; (edited photo, mask)."""
    page.get_by_role("tab", name="Depth-based editing").click()
    with page.expect_file_chooser() as chooser:
        page.locator("#edit-photo button[aria-label='Upload']").first.click()
    chooser.value.set_files(str(photo))
    page.locator("#edit-photo button[aria-label='Brush']").first.click()
    box = page.locator("#edit-photo canvas").first.bounding_box()
    x, y = box["x"] + 0.45 * box["width"], box["y"] + 0.45 * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 4):
        page.mouse.move(x + 10 * k, y + 5 * k)
    page.mouse.up()
    page.locator("#edit-run").click()
    return shown_image(page, "edit-image"), shown_image(page, "edit-mask")


@contextlib.contextmanager
def served_page(tmp_path: Path, face_model_path):
    """``jointportrait serve --tiny --video`` in a subprocess and a chromium page on it: (page, photo, proc).

    On exit the server gets SIGTERM; it must exit 0 and leave nothing in its TMPDIR.
    """
    server_tmp = tmp_path / "server_tmp"
    server_tmp.mkdir()
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}/"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jointportrait.cli.main", "serve", "--tiny", "--video", "--port",
                                 str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(server_tmp)})
    try:
        photo = synthetic_portrait(tmp_path / "synth", face_model_path)  # while the server starts
        wait_until_serving(url, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_text("This is a tiny random model: every output is noise.").wait_for(timeout=30_000)
            yield page, photo, proc
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=30)
        print(log.read_text())  # shown by pytest when the test fails
    assert returncode == 0, log.read_text()
    assert "stopped; temporary files removed" in log.read_text()
    assert list(server_tmp.glob("jointportrait-serve-*")) == []


def test_depth_and_animation_tabs_and_a_bad_upload_in_a_real_browser(tmp_path, text_as_png, face_model_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with served_page(tmp_path, face_model_path) as (page, photo, proc):
        assert upload_and_wait_for_depth(page, photo) == [PHOTO_SIDE, PHOTO_SIDE]
        page.locator("#depth-3d canvas").wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # the 3-D view draws the mesh
        page.screenshot(path=str(ARTIFACTS / "serve_depth_tab.png"), full_page=True)

        page.reload()
        page.locator("#depth-photo input[type=file]").set_input_files(str(text_as_png))
        toast = page.locator("[data-testid=toast-text]").filter(has_text="not a PNG, JPEG or WebP image")
        toast.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "serve_bad_upload.png"))
        assert "the file's content was checked, not its name" in toast.inner_text()
        assert proc.poll() is None

        page.reload()  # the same server still answers, with a new result
        assert upload_and_wait_for_depth(page, photo) == [PHOTO_SIDE, PHOTO_SIDE]

        # the animation tab (the model has motion modules): H.264 videos that chromium reads
        depth_files = synthetic_clip_depth(tmp_path / "clip", face_model_path)
        rgb, depth = animate_in_page(page, photo, depth_files)
        size = 64  # the tiny model's native size
        assert rgb["width"] == depth["width"] == size and rgb["height"] == depth["height"] == size
        assert rgb["duration"] == pytest.approx(ANIMATION_FRAMES / 25, abs=0.05)
        summary = page.locator("#animate-summary").inner_text()
        assert f"{ANIMATION_FRAMES} frames in 2 clips of 3 (1 motion frame)" in summary and "seam score" in summary
        page.wait_for_timeout(500)  # the videos draw a frame
        page.screenshot(path=str(ARTIFACTS / "serve_animate_tab.png"), full_page=True)


@pytest.mark.slow  # the image editor's canvas is slow in software-rendered headless chromium (20-40 s)
def test_editing_tab_in_a_real_browser(tmp_path, face_model_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with served_page(tmp_path, face_model_path) as (page, photo, _):
        edited, mask = paint_and_edit(page, photo)
        assert mask.shape == (PHOTO_SIDE, PHOTO_SIDE) and 0 < (mask > 0).mean() < 0.5
        np.testing.assert_array_equal(edited[mask == 0], np.asarray(Image.open(photo).convert("RGB"))[mask == 0])
        page.screenshot(path=str(ARTIFACTS / "serve_edit_tab.png"), full_page=True)
