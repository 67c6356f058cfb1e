"""The web demo's server in this process: its API through gradio_client and plain HTTP, the queue, sessions."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import gradio as gr
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from serve_photos import portrait_like

from jointportrait.errors import InputError
from jointportrait.serve import handlers
from jointportrait.serve.app import MODEL_QUEUE, TABS, TINY_NOTE, Tab, build_app, header, launch, upload_path
from jointportrait.serve.limits import UploadLimits

API = {"/estimate_depth", "/relight_prepare", "/relight", "/edit", "/generate"}
MAX_UPLOAD = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(serve_ctx):
    """(ctx, url, demo) of a running server on 127.0.0.1 with a 300 kB upload limit."""
    ctx = dataclasses.replace(serve_ctx, limits=UploadLimits(max_bytes=MAX_UPLOAD))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(ctx.workspace.gradio_dir))  # restored after the module
        port = free_port()
        demo = launch(ctx, "127.0.0.1", port, max_queue=4)
        yield ctx, f"http://127.0.0.1:{port}/", demo
        demo.close()


@pytest.fixture
def client(server, tmp_path):
    return Client(server[1], verbose=False, download_files=str(tmp_path / "downloads"))


def test_api_names_are_the_documented_ones(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == API
    assert api["unnamed_endpoints"] == {}


def test_estimate_depth_over_the_api_equals_the_handler(server, client, photo):
    grey, color, normals, view3d, files = client.predict(handle_file(str(photo)), 2, 1, 64, "mesh", 0,
                                                         api_name="/estimate_depth")
    direct = handlers.depth_tab(server[0], photo, steps=2, ensemble=1, resolution=64, geometry="mesh", seed=0)
    np.testing.assert_array_equal(np.asarray(Image.open(grey)), direct.grey)
    np.testing.assert_array_equal(np.asarray(Image.open(normals)), direct.normals)
    assert view3d.endswith("view.glb")
    assert [f.rsplit("/", 1)[-1] for f in files] == [p.name for p in direct.files]
    np.testing.assert_array_equal(np.load(files[0]), direct.depth)


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(server, client, photo, text_as_png, tmp_path):
    with pytest.raises(AppError, match="photo: not a PNG, JPEG or WebP image"):
        client.predict(handle_file(str(text_as_png)), 2, 1, 64, "mesh", 0, api_name="/estimate_depth")
    with pytest.raises(AppError, match="steps must be between 1 and 100, got 500"):
        client.predict(handle_file(str(photo)), 500, 1, 64, "mesh", 0, api_name="/estimate_depth")
    big = tmp_path / "big.png"  # over the upload limit: refused by the upload route, before any handler
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), np.uint8)).save(big)
    assert big.stat().st_size > MAX_UPLOAD
    with big.open("rb") as f:
        response = httpx.post(server[1] + "gradio_api/upload", files={"files": ("big.png", f, "image/png")})
    assert response.status_code == 413
    result = client.predict(handle_file(str(photo)), 1, 1, 64, "mesh", 0, api_name="/estimate_depth")
    assert np.asarray(Image.open(result[0])).shape == (96, 80)


def test_a_path_written_by_the_client_is_never_opened(server, photo, monkeypatch):
    calls = []
    monkeypatch.setattr(handlers, "depth_tab", lambda *a, **k: calls.append(a))
    forged = {"path": str(photo), "orig_name": "photo.png", "meta": {"_type": "gradio.FileData"}}
    start = httpx.post(server[1] + "gradio_api/call/estimate_depth", json={"data": [forged, 2, 1, 64, "mesh", 0]})
    assert start.status_code == 200
    stream = httpx.get(server[1] + f"gradio_api/call/estimate_depth/{start.json()['event_id']}", timeout=30)
    assert "event: error" in stream.text and calls == []
    with pytest.raises(InputError, match="photo: not an uploaded file"):
        upload_path(server[0], forged, "photo")
    with pytest.raises(InputError, match="photo: nothing was uploaded"):
        upload_path(server[0], None, "photo")


def test_sessions_keep_their_own_state(server, tmp_path):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.fromarray(portrait_like(48, 40, seed=1)).save(small)
    Image.fromarray(portrait_like(80, 64, seed=2)).save(large)
    a, b = (Client(server[1], verbose=False, download_files=str(tmp_path / n)) for n in "ab")
    a.predict(handle_file(str(small)), 1, 0, api_name="/relight_prepare")
    b.predict(handle_file(str(large)), 1, 0, api_name="/relight_prepare")
    relit_a, _ = a.predict(0, 0, 1.0, 0.3, "multiply", api_name="/relight")
    relit_b, _ = b.predict(0, 0, 1.0, 0.3, "multiply", api_name="/relight")
    assert np.asarray(Image.open(relit_a)).shape == (48, 40, 3)
    assert np.asarray(Image.open(relit_b)).shape == (80, 64, 3)
    fresh = Client(server[1], verbose=False, download_files=str(tmp_path / "c"))
    with pytest.raises(AppError, match="upload a photo first"):
        fresh.predict(0, 0, 1.0, 0.3, "multiply", api_name="/relight")


def test_edit_and_generate_over_the_api(server, client, photo, tmp_path):
    layer = np.zeros((96, 80, 4), np.uint8)
    layer[30:60, 20:50] = 255
    Image.fromarray(layer).save(tmp_path / "layer.png")
    editor = {"background": handle_file(str(photo)), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": None}
    edited, mask, _, files = client.predict(editor, -0.2, 2, 0, api_name="/edit")
    painted = np.asarray(Image.open(mask))[30:60, 20:50]
    assert (painted == 255).all() and np.asarray(Image.open(edited)).shape == (96, 80, 3) and len(files) == 3
    images, depths, files = client.predict(handle_file(str(photo)), 2, 2, 1.0, 0, api_name="/generate")
    assert len(images) == len(depths) == 2 and len(files) == 6


def test_model_jobs_run_one_at_a_time(server, photo, tmp_path, monkeypatch):
    model_fns = [fn for fn in server[2].fns.values() if fn.api_name in {"estimate_depth", "relight_prepare", "edit",
                                                                       "generate"}]
    assert len(model_fns) == 4
    assert all(fn.concurrency_id == MODEL_QUEUE and fn.concurrency_limit == 1 for fn in model_fns)
    spans, lock = [], threading.Lock()

    def slow(ctx, path, *args):
        start = time.monotonic()
        time.sleep(0.4)
        with lock:
            spans.append((start, time.monotonic()))
        return handlers.DepthView(*(np.zeros((4, 4), np.uint8),) * 4, path, [])

    monkeypatch.setattr(handlers, "depth_tab", slow)
    clients = [Client(server[1], verbose=False, download_files=str(tmp_path / str(i))) for i in range(3)]
    jobs = [c.submit(handle_file(str(photo)), 1, 1, 64, "mesh", 0, api_name="/estimate_depth") for c in clients]
    for job in jobs:
        job.result(timeout=30)
    spans.sort()
    assert len(spans) == 3 and all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:]))


def test_tab_registry_and_header(serve_ctx):
    def never(ctx):
        raise AssertionError("an unavailable tab must not be built")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(serve_ctx.workspace.gradio_dir))
        tabs = {**TABS, "animate": Tab("Animation", never, available=lambda ctx: False)}
        config = build_app(serve_ctx, tabs).get_config_file()
    labels = [c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"]
    assert labels == ["Depth estimation", "Relighting", "Depth-based editing", "Joint generation"]
    assert TINY_NOTE in header(serve_ctx)
    assert TINY_NOTE not in header(dataclasses.replace(serve_ctx, tiny=False))
    shown = [c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "header"]
    assert len(shown) == 1 and TINY_NOTE in shown[0]


def test_gradio_error_is_what_a_known_input_problem_becomes():
    from jointportrait.serve.app import page_errors

    @page_errors
    def bad():
        raise InputError("photo: not a PNG, JPEG or WebP image")

    @page_errors
    def broken():
        raise RuntimeError("/srv/secret/path exploded")

    with pytest.raises(gr.Error, match="photo: not a PNG"):
        bad()
    with pytest.raises(gr.Error) as err:
        broken()
    assert "/srv/secret" not in str(err.value) and "internal error" in str(err.value)
