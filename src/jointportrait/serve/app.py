"""The web demo's page: Gradio Blocks, one tab per application, wired to :mod:`jointportrait.serve.handlers`.

Tabs come from the explicit registry :data:`TABS` (key -> :class:`Tab`); a tab whose
``available(ctx)`` is False for the loaded model is left out: the animation tab (stage 3,
paper Sec. 5.5) needs a model with motion modules.

Every model call is one queue job in the concurrency group ``"model"`` with limit 1: one
job at a time on the server's device, the others wait in the queue (their position is
shown). Events take Gradio's raw payloads (``preprocess=False``), so nothing an upload
contains is decoded before :mod:`jointportrait.serve.limits` has checked it. Per-user
results live in the user's own session (``gr.State``) and in files under content-hash
names; no output path is shared between users. API names (``/estimate_depth``,
``/relight_prepare``, ``/relight``, ``/edit``, ``/generate``, ``/animate``) are listed in docs/SERVE.md.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from jointportrait.errors import InputError, JointPortraitError
from jointportrait.serve import handlers
from jointportrait.serve.context import ServeContext

logger = logging.getLogger(__name__)

MODEL_QUEUE = "model"  # concurrency id of every event that runs the model
STATE_TTL_S = 3600  # a session's state (photo, normals, depth) is dropped after an hour without use
OUTPUT_BUTTONS = ["download", "fullscreen"]  # no "share" (it posts to Hugging Face)


@dataclass(frozen=True)
class Tab:
    title: str
    build: Callable[[ServeContext], None]  # adds the tab's components and events inside a gr.Tab
    available: Callable[[ServeContext], bool] = lambda ctx: True


def page_errors(fn: Callable) -> Callable:
    """Known input problems become a message on the page (and a client error); others are logged, not shown."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except JointPortraitError as exc:
            raise gr.Error(str(exc), duration=30) from None
        except Exception:
            logger.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("internal error while processing the request (details are in the server's log)") from None

    return wrapper


def upload_path(ctx: ServeContext, payload, what: str) -> Path:
    """The stored file of an upload, from Gradio's raw payload; it must lie in the server's upload folder.

    Gradio already refuses a payload naming a file it did not receive; this checks it again,
    so no path a client writes is ever opened.
    """
    if payload is None:
        raise InputError(f"{what}: nothing was uploaded")
    path = payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str) or not path:
        raise InputError(f"{what}: not an uploaded file")
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(ctx.workspace.gradio_dir.resolve()) or not resolved.is_file():
        raise InputError(f"{what}: not an uploaded file")
    return resolved


def reporter(progress: gr.Progress) -> handlers.Progress:
    return lambda fraction, desc: progress(fraction, desc=desc)


def _model_event(triggers, fn, inputs, outputs, api_name: str):
    """A queued model job: one at a time per device (concurrency group :data:`MODEL_QUEUE`)."""
    return gr.on(triggers, fn, inputs, outputs, api_name=api_name, preprocess=False,
                 concurrency_id=MODEL_QUEUE, concurrency_limit=1, trigger_mode="once")


def _image(label: str, elem_id: str, **kwargs) -> gr.Image:
    return gr.Image(label=label, elem_id=elem_id, format="png", interactive=False, buttons=OUTPUT_BUTTONS, **kwargs)


def _options():
    return gr.Accordion("options", open=False)


def build_depth_tab(ctx: ServeContext) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            photo = gr.Image(label="photo", type="filepath", sources=["upload", "clipboard"], elem_id="depth-photo")
            with _options():
                steps = gr.Slider(1, 50, 10, step=1, label="steps")
                ensemble = gr.Slider(1, handlers.MAX_ENSEMBLE, 1, step=1, label="ensemble size")
                resolution = gr.Slider(0, 1024, ctx.native_resolution, step=8,
                                       label="processing resolution (longer side; 0 = the photo's size)")
                geometry = gr.Radio(list(handlers.GEOMETRIES), value="mesh", label="3-D output")
                seed = gr.Number(0, precision=0, label="seed")
            run = gr.Button("Estimate depth", variant="primary", elem_id="depth-run")
        with gr.Column(scale=2):
            with gr.Row():
                grey = _image("depth (near = dark)", "depth-grey")
                color = _image("depth colour map (near = warm)", "depth-color")
                normals = _image("normals", "depth-normals")
            view = gr.Model3D(label="3-D view (drag to turn)", elem_id="depth-3d", height=360)
            files = gr.File(label="downloads: .npy, 16-bit PNG, colour map, normals, PLY, GLB",
                            file_count="multiple", elem_id="depth-files")

    @page_errors
    def estimate_depth(photo, steps, ensemble, resolution, geometry, seed, progress=gr.Progress(track_tqdm=True)):
        view_ = handlers.depth_tab(ctx, upload_path(ctx, photo, "photo"), steps, ensemble, resolution, geometry,
                                   seed, reporter(progress))
        return view_.grey, view_.color, view_.normals, str(view_.view3d), [str(p) for p in view_.files]

    _model_event([photo.upload, run.click], estimate_depth, [photo, steps, ensemble, resolution, geometry, seed],
                 [grey, color, normals, view, files], "estimate_depth")


def build_relight_tab(ctx: ServeContext) -> None:
    source = gr.State(None, time_to_live=STATE_TTL_S)
    with gr.Row():
        with gr.Column(scale=1):
            photo = gr.Image(label="photo", type="filepath", sources=["upload", "clipboard"], elem_id="relight-photo")
            with _options():
                steps = gr.Slider(1, 50, 10, step=1, label="depth estimation steps")
                seed = gr.Number(0, precision=0, label="seed")
            azimuth = gr.Slider(-180, 180, -30, step=1, label="light azimuth (degrees; + = from the right)")
            elevation = gr.Slider(-90, 90, 30, step=1, label="light elevation (degrees; + = from above)")
            intensity = gr.Slider(0, 4, 1.0, step=0.05, label="light intensity")
            ambient = gr.Slider(0, 2, 0.3, step=0.05, label="ambient light")
            mode = gr.Radio(["multiply", "ratio"], value="multiply",
                            label="mode (ratio divides out the photo's own estimated shading)")
            run = gr.Button("Estimate depth", variant="primary", elem_id="relight-run")
        with gr.Column(scale=2), gr.Row():
            relit = _image("relit photo", "relight-image")
            shading = _image("new shading", "relight-shading")
            normals = _image("normals from the estimated depth", "relight-normals")

    @page_errors
    def relight_prepare(photo, steps, seed, progress=gr.Progress(track_tqdm=True)):
        state, normal_map = handlers.relight_source(ctx, upload_path(ctx, photo, "photo"), steps, seed,
                                                    reporter(progress))
        return state, normal_map

    @page_errors
    def relight(state, azimuth, elevation, intensity, ambient, mode):
        return handlers.relight_tab(state, azimuth, elevation, intensity, ambient, mode)

    lights = [source, azimuth, elevation, intensity, ambient, mode]
    _model_event([photo.upload, run.click], relight_prepare, [photo, steps, seed], [source, normals],
                 "relight_prepare").success(relight, lights, [relit, shading], api_name="relight_first",
                                            api_visibility="private", preprocess=False)
    gr.on([azimuth.release, elevation.release, intensity.release, ambient.release, mode.change], relight,
          lights, [relit, shading], api_name="relight", preprocess=False, concurrency_limit=4,
          trigger_mode="always_last", show_progress="minimal")


def build_edit_tab(ctx: ServeContext) -> None:
    memo = gr.State(None, time_to_live=STATE_TTL_S)
    with gr.Row():
        with gr.Column(scale=1):
            editor = gr.ImageEditor(
                label="photo: paint the region to change", type="filepath", sources=["upload", "clipboard"],
                brush=gr.Brush(colors=["#ff3b30"], color_mode="fixed"), layers=False, transforms=(),
                elem_id="edit-photo",
            )
            offset = gr.Slider(-0.5, 0.5, -0.1, step=0.01,
                               label="depth edit of the painted region (relative depth; - = pull closer, + = push away)")
            with _options():
                steps = gr.Slider(1, 100, 20, step=1, label="steps")
                seed = gr.Number(0, precision=0, label="seed")
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
        with gr.Column(scale=2):
            with gr.Row():
                edited = _image("edited photo", "edit-image")
                mask = _image("regenerated region (the rest is unchanged)", "edit-mask")
                depth = _image("edited depth", "edit-depth")
            files = gr.File(label="downloads", file_count="multiple", elem_id="edit-files")

    @page_errors
    def edit(editor_value, offset, steps, seed, memo_value, progress=gr.Progress(track_tqdm=True)):
        value = editor_value if isinstance(editor_value, dict) else {}
        photo = upload_path(ctx, value.get("background"), "photo")
        layers = [upload_path(ctx, layer, "mask layer") for layer in value.get("layers") or []]
        result = handlers.edit_tab(ctx, photo, layers, offset, steps, seed, memo_value, reporter(progress))
        return result.image, result.mask, result.edited_depth, [str(p) for p in result.files], result.memo

    _model_event([run.click], edit, [editor, offset, steps, seed, memo], [edited, mask, depth, files, memo], "edit")


def build_generate_tab(ctx: ServeContext) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            reference = gr.Image(label="identity reference", type="filepath", sources=["upload", "clipboard"],
                                 elem_id="generate-reference")
            samples = gr.Slider(1, handlers.MAX_SAMPLES, 2, step=1, label="samples")
            with _options():
                steps = gr.Slider(1, 100, 20, step=1, label="steps")
                guidance = gr.Slider(0, 10, 1.0, step=0.1, label="reference guidance (1 = off)")
                seed = gr.Number(0, precision=0, label="seed")
            run = gr.Button("Generate", variant="primary", elem_id="generate-run")
        with gr.Column(scale=2):
            images = gr.Gallery(label="RGB", format="png", columns=4, buttons=OUTPUT_BUTTONS, elem_id="generate-images")
            depths = gr.Gallery(label="depth (near = warm)", format="png", columns=4, buttons=OUTPUT_BUTTONS,
                                elem_id="generate-depths")
            files = gr.File(label="downloads", file_count="multiple", elem_id="generate-files")

    @page_errors
    def generate(reference, samples, steps, guidance, seed, progress=gr.Progress(track_tqdm=True)):
        result = handlers.generate_tab(ctx, upload_path(ctx, reference, "reference"), samples, steps, guidance,
                                       seed, reporter(progress))
        return result.images, result.depths, [str(p) for p in result.files]

    _model_event([run.click], generate, [reference, samples, steps, guidance, seed], [images, depths, files],
                 "generate")


def build_animate_tab(ctx: ServeContext) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            reference = gr.Image(label="reference (the identity)", type="filepath", sources=["upload", "clipboard"],
                                 elem_id="animate-reference")
            driving = gr.File(label="driving: depth maps, frames or one video", file_count="multiple",
                              elem_id="animate-driving")
            gr.Markdown(f"Depth maps: `.npy` or 16-bit PNG, larger = farther, 0 = no depth. Frames: PNG or JPEG (their "
                        f"depth is estimated by the model). One file per frame, taken in file-name order, at most "
                        f"{handlers.MAX_FRAMES}; or one video (MP4, WebM, AVI: its first {handlers.MAX_FRAMES} frames).")
            num_frames = gr.Slider(0, handlers.MAX_FRAMES, 0, step=1, label="frames (0 = all of the upload)")
            with gr.Accordion("options", open=False, elem_id="animate-options"):
                clip_length = gr.Slider(1, 24, 14, step=1, label="clip length (frames generated at once; paper: 14)",
                                        elem_id="animate-clip-length")
                motion_frames = gr.Slider(0, 8, 4, step=1, elem_id="animate-motion-frames",
                                          label="motion frames (of the previous clip each clip sees; paper: 4)")
                independent = gr.Checkbox(False, label="independent clips (no motion frames: for comparison)")
                steps = gr.Slider(1, handlers.MAX_STEPS, 20, step=1, label="steps", elem_id="animate-steps")
                estimation_steps = gr.Slider(1, 50, 1, step=1,
                                             label="depth estimation steps per frame (frames or a video)")
                fps = gr.Slider(1, handlers.MAX_FPS, 25, step=1, label="frames per second of the video")
                seed = gr.Number(0, precision=0, label="seed")
            run = gr.Button("Animate", variant="primary", elem_id="animate-run")
        with gr.Column(scale=2):
            with gr.Row():
                video = gr.Video(label="animation (RGB)", format=None, interactive=False, autoplay=True, loop=True,
                                 buttons=OUTPUT_BUTTONS, elem_id="animate-video")
                depth_video = gr.Video(label="depth (near = warm)", format=None, interactive=False, autoplay=True,
                                       loop=True, buttons=OUTPUT_BUTTONS, elem_id="animate-depth")
            summary = gr.Markdown(elem_id="animate-summary")
            files = gr.File(label="downloads: side-by-side video, RGB video, depth video, frames (.png + .npy)",
                            file_count="multiple", elem_id="animate-files")

    @page_errors
    def animate(reference, driving, num_frames, clip_length, motion_frames, independent, steps, estimation_steps,
                fps, seed, progress=gr.Progress(track_tqdm=True)):
        uploads = [upload_path(ctx, item, "driving file") for item in driving or []]
        view = handlers.animate_tab(ctx, upload_path(ctx, reference, "reference"), uploads, num_frames, clip_length,
                                    motion_frames, steps, seed, independent, fps, estimation_steps, reporter(progress))
        return str(view.video), str(view.depth_video), view.summary, [str(p) for p in view.files]

    _model_event([run.click], animate, [reference, driving, num_frames, clip_length, motion_frames, independent, steps,
                                        estimation_steps, fps, seed], [video, depth_video, summary, files], "animate")


# key -> tab; a tab is one entry here plus its build function
TABS: dict[str, Tab] = {
    "depth": Tab("Depth estimation", build_depth_tab),
    "relight": Tab("Relighting", build_relight_tab),
    "edit": Tab("Depth-based editing", build_edit_tab),
    "generate": Tab("Joint generation", build_generate_tab),
    "animate": Tab("Animation", build_animate_tab, available=lambda ctx: ctx.has_motion),
}

TINY_NOTE = ("**This is a tiny random model: every output is noise.** It shows how the page works; "
             "start `jointportrait serve --model DIR` with a trained model for real results.")


def header(ctx: ServeContext) -> str:
    lines = ["# jointportrait", "Joint depth and appearance for portraits "
             "(Ji et al., *Joint Learning of Depth and Appearance for Portrait Images*).", "",
             f"Model: {ctx.describe()}. One job runs at a time; others wait in the queue."]
    if ctx.tiny:
        lines += ["", TINY_NOTE]
    return "\n".join(lines)


def build_app(ctx: ServeContext, tabs: dict[str, Tab] | None = None) -> gr.Blocks:
    """The page: a header and one tab per available registry entry."""
    # Gradio keeps uploads and results in GRADIO_TEMP_DIR, read when Blocks and the app are
    # created: the server's own private folder, removed with the workspace
    os.environ["GRADIO_TEMP_DIR"] = str(ctx.workspace.gradio_dir)
    tabs = TABS if tabs is None else tabs
    with gr.Blocks(title="jointportrait", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(header(ctx), elem_id="header")
        for key, tab in tabs.items():
            if tab.available(ctx):
                with gr.Tab(tab.title, id=key, elem_id=f"tab-{key}"):
                    tab.build(ctx)
    return demo


def launch(ctx: ServeContext, host: str = "127.0.0.1", port: int = 7860, max_queue: int = 16) -> gr.Blocks:
    """Build the page and start serving it on ``host:port`` in a background thread (``demo.close()`` stops it).

    ``max_queue`` jobs may wait; more are refused with "queue full". Only the page's own
    routes are open: no share link, no monitoring page, no MCP server, no run history.
    """
    demo = build_app(ctx)
    demo.queue(max_size=max_queue, default_concurrency_limit=1, api_open=False)
    demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=False,
        share=False, max_file_size=ctx.limits.max_bytes, footer_links=["api"], enable_monitoring=False,
        run_history=False, mcp_server=False, ssr_mode=False, pwa=False, state_session_capacity=256,
    )
    return demo
