"""The web demo's handlers: one plain function per tab, calling the same library functions as the CLI.

No handler imports Gradio: they take paths of uploaded files (already stored by the
server) and plain numbers, check them (an :class:`~jointportrait.errors.InputError` naming
the control when out of range: API callers can send anything), run the application, and
return arrays and files written under fixed names into a fresh call folder of the
:class:`~jointportrait.serve.workspace.Workspace`. The layout (:mod:`jointportrait.serve.app`)
maps them to components.

=====================  =================================================================
tab                    library calls (paper section)
=====================  =================================================================
depth estimation       ``estimate_depth`` (5.3), ``normals_from_depth``, ``backproject``,
                       ``depth_mesh`` / ``point_cloud``, ``save_geometry`` (Suppl. 8.2)
relighting             ``estimate_depth``, ``normals_from_depth``, ``lambert_shading``,
                       ``relight_image`` (Suppl. 8.2)
depth-based editing    ``estimate_depth``, ``push_pull_depth``, ``mask_from_depth_edit``,
                       ``edit_with_depth`` (5.4, Fig. 7)
joint generation       the pipeline itself (3.2, Fig. 1), as ``jointportrait generate``
animation              ``load_depth_folder`` / ``estimate_driving_depth``, ``animate``,
                       ``write_animation`` (5.5, Suppl. 7.1), as ``jointportrait animate``
=====================  =================================================================
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from jointportrait.appearance.shading import lambert_shading
from jointportrait.applications.animation import (
    Animation,
    DrivingDepth,
    animate,
    depth_frames,
    estimate_driving_depth,
    load_depth_folder,
    rgb_frames,
    write_animation,
)
from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.applications.editing import edit_with_depth, mask_from_depth_edit, push_pull_depth
from jointportrait.applications.relight import RELIGHT_MODES, relight_image
from jointportrait.errors import InputError, JointPortraitError
from jointportrait.geometry.cameras import (
    DEFAULT_DEPTH_RANGE,
    DEFAULT_FOV_DEG,
    backproject,
    intrinsics_from_fov,
    relative_to_camera_depth,
)
from jointportrait.geometry.export import depth_mesh, point_cloud, save_geometry
from jointportrait.geometry.normals import normals_from_depth, normals_to_image
from jointportrait.io import colorize_depth, save_depth_npy, save_depth_outputs, save_image
from jointportrait.serve.context import ServeContext
from jointportrait.serve.limits import (
    check_depth_upload,
    check_image_upload,
    check_video_upload,
    driving_upload_kind,
    load_image_upload,
)
from jointportrait.tracking.video import write_video

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)
GEOMETRIES = ("mesh", "point cloud")
# Longer-side caps that keep one job's memory and files bounded whatever the photo's size (the
# commands have none): the mesh in the page's 3-D view, the PLY/GLB downloads, relighting
VIEW_SIDE, EXPORT_SIDE, RELIGHT_SIDE = 256, 1024, 1024
FEATHER = 0.02  # push/pull slope width, as a fraction of the photo's shorter side
MAX_STEPS, MAX_ENSEMBLE, MAX_SAMPLES, MAX_RESOLUTION = 100, 10, 8, 2048
# Animation: frames per call (the whole clip is held in memory, a frame costs a denoising pass per step),
# the largest driving video frame (every frame is decoded before its depth is estimated at the model's size)
MAX_FRAMES, MAX_VIDEO_PIXELS, MAX_FPS = 48, 1920 * 1080, 60


def no_progress(fraction: float, desc: str) -> None:
    """The default ``progress``: report nothing."""


def check_number(name: str, value, lo: float, hi: float, integer: bool = False):
    """``value`` as a float (or int) in ``[lo, hi]``; an :class:`InputError` naming ``name`` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        bounds = [int(b) if float(b).is_integer() else b for b in (lo, hi)]
        raise InputError(f"{name} must be between {bounds[0]} and {bounds[1]}, got {value!r}")
    if integer:
        if number != int(number):
            raise InputError(f"{name} must be a whole number, got {value!r}")
        return int(number)
    return number


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _generator(seed) -> torch.Generator:
    """A CPU generator seeded like the CLI's ``--seed`` (same seed, same output on any device)."""
    return torch.Generator("cpu").manual_seed(check_number("seed", seed, 0, 2**32 - 1, integer=True))


def _estimate(ctx: ServeContext, image: PIL.Image.Image, steps, ensemble, resolution, seed, progress: Progress):
    """:func:`estimate_depth` under the model lock, with the inputs checked."""
    steps = check_number("steps", steps, 1, MAX_STEPS, integer=True)
    ensemble = check_number("ensemble size", ensemble, 1, MAX_ENSEMBLE, integer=True)
    resolution = check_number("processing resolution", resolution, 0, MAX_RESOLUTION, integer=True)
    if resolution == 0 and max(image.size) > MAX_RESOLUTION:
        raise InputError(f"processing resolution 0 (the photo's size) would sample at {max(image.size)} px; "
                         f"the limit is {MAX_RESOLUTION}")
    generator = _generator(seed)
    progress(0.05, "waiting for the model" if ctx.model_lock.locked() else "estimating depth")
    with ctx.model_lock:
        progress(0.1, "estimating depth")
        return estimate_depth(ctx.pipe, image, num_inference_steps=steps, ensemble_size=ensemble,
                              processing_resolution=resolution, generator=generator)


def _camera(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative depth -> (camera z, valid, intrinsics), placed as the CLI's defaults (``--fov 40 --depth-range 0.3``)."""
    h, w = depth.shape
    z = relative_to_camera_depth(depth, depth_range=DEFAULT_DEPTH_RANGE)
    return z, np.isfinite(depth), intrinsics_from_fov(h, w, DEFAULT_FOV_DEG)


def normals_of(depth: np.ndarray) -> np.ndarray:
    """Unit normals ``(H, W, 3)`` (viewer frame) of relative depth, as ``estimate-depth`` and ``relight`` do."""
    z, valid, k = _camera(depth)
    return normals_from_depth(z, intrinsics=k, valid=valid)


def geometry_of(image: PIL.Image.Image, depth: np.ndarray, kind: str):
    """A coloured mesh or point cloud of the photo and its depth, as ``jointportrait export`` builds it."""
    z, valid, k = _camera(depth)
    points = backproject(np.where(valid, z, 0.0), intrinsics=k)
    colors = np.asarray(image.convert("RGB"))
    return depth_mesh(points, colors, valid) if kind == "mesh" else point_cloud(points, colors, valid)


def at_most(image: PIL.Image.Image, depth: np.ndarray, side: int) -> tuple[PIL.Image.Image, np.ndarray]:
    """The photo and its depth with the longer side at most ``side`` (nearest depth: no blended edges)."""
    scale = side / max(image.size)
    if scale >= 1:
        return image, depth
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small_depth = np.asarray(PIL.Image.fromarray(depth.astype(np.float32)).resize(size, PIL.Image.NEAREST))
    return image.resize(size, PIL.Image.BILINEAR), small_depth


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def depth_preview(depth: np.ndarray) -> np.ndarray:
    """Relative depth in [0, 1] -> (H, W) uint8 grey, the 8-bit view of the 16-bit file (near = dark)."""
    return _to_uint8(np.nan_to_num(depth))


# ---------------------------------------------------------------- depth estimation


@dataclass
class DepthView:
    depth: np.ndarray  # (H, W) float32 in [0, 1], 0 = near, at the photo's size
    grey: np.ndarray  # (H, W) uint8
    color: np.ndarray  # (H, W, 3) uint8, TURBO, near = warm
    normals: np.ndarray  # (H, W, 3) uint8, (n + 1) / 2
    view3d: Path  # GLB for the page's 3-D view
    files: list[Path]  # downloads


def depth_tab(ctx: ServeContext, photo: str | Path, steps=10, ensemble=1, resolution=None, geometry="mesh",
              seed=0, progress: Progress = no_progress) -> DepthView:
    """Photo -> relative depth (grey, colour map, 16-bit PNG, ``.npy``), normals and a mesh or point cloud (GLB, PLY).

    ``resolution``: longer side while sampling (None: the model's native size; 0: the photo's size).
    Depth and normals are at the photo's size; the PLY/GLB at most :data:`EXPORT_SIDE` pixels and
    the 3-D view's GLB at most :data:`VIEW_SIDE` on the longer side.
    """
    geometry = check_choice("3-D output", geometry, GEOMETRIES)
    image = load_image_upload(photo, ctx.limits, "photo")
    resolution = ctx.native_resolution if resolution is None else resolution
    result = _estimate(ctx, image, steps, ensemble, resolution, seed, progress)
    progress(0.8, "normals and 3-D export")
    out = ctx.workspace.call_dir()
    depth = result.depth
    paths = save_depth_outputs(out, "portrait", depth, overwrite=False)
    normals = normals_to_image(normals_of(depth))
    files = [paths["npy"], paths["png16"], paths["color"], save_image(out / "portrait_normals.png", normals)]
    if result.uncertainty is not None:
        files.append(save_depth_npy(out / "portrait_uncertainty.npy", result.uncertainty))
    stem = "portrait_mesh" if geometry == "mesh" else "portrait_points"
    exported = geometry_of(*at_most(image, depth, EXPORT_SIDE), geometry)
    files += [save_geometry(exported, out / f"{stem}.ply"), save_geometry(exported, out / f"{stem}.glb")]
    view3d = save_geometry(geometry_of(*at_most(image, depth, VIEW_SIDE), geometry), out / "view.glb")
    progress(1.0, "done")
    return DepthView(depth, depth_preview(depth), colorize_depth(depth, lo=0.0, hi=1.0), normals, view3d, files)


# ---------------------------------------------------------------- relighting


@dataclass
class RelightSource:
    """A photo and its normals, kept in the user's session between the estimate and the light sliders."""

    image: np.ndarray  # (H, W, 3) uint8
    normals: np.ndarray  # (H, W, 3) float32, viewer frame


def relight_source(ctx: ServeContext, photo: str | Path, steps=10, seed=0,
                   progress: Progress = no_progress) -> tuple[RelightSource, np.ndarray]:
    """Photo -> its estimated normals (what relighting needs), and the normal map as an image.

    Both are kept at most :data:`RELIGHT_SIDE` pixels on the longer side (they stay in the session).
    """
    image = load_image_upload(photo, ctx.limits, "photo")
    result = _estimate(ctx, image, steps, 1, ctx.native_resolution, seed, progress)
    image, depth = at_most(image, result.depth, RELIGHT_SIDE)
    normals = normals_of(depth)
    progress(1.0, "done")
    return RelightSource(np.asarray(image), normals.astype(np.float32)), normals_to_image(normals)


def light_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit direction toward the light in the viewer frame (x right, y up, z toward the viewer).

    Azimuth turns the light from the front (0) to the viewer's right (+90) or left (-90);
    elevation raises it (+90 = from above): ``(cos e sin a, sin e, cos e cos a)``.
    """
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])


def relight_tab(source: RelightSource | None, azimuth=-30.0, elevation=30.0, intensity=1.0, ambient=0.3,
                mode="multiply") -> tuple[np.ndarray, np.ndarray]:
    """The relit photo and its new shading (both uint8) under a directional light (``jointportrait relight``)."""
    if source is None:
        raise InputError("upload a photo first: relighting needs its estimated depth")
    azimuth = check_number("light azimuth", azimuth, -180, 180)
    elevation = check_number("light elevation", elevation, -90, 90)
    intensity = check_number("light intensity", intensity, 0, 4)
    ambient = check_number("ambient light", ambient, 0, 2)
    mode = check_choice("mode", mode, RELIGHT_MODES)
    normals = source.normals.astype(np.float64)
    shading = lambert_shading(normals, light_direction(azimuth, elevation), intensity=intensity, ambient=ambient)
    result = relight_image(source.image / 255.0, normals, shading, mode=mode)
    return _to_uint8(result.image), _to_uint8(shading)


# ---------------------------------------------------------------- depth-based editing


@dataclass
class DepthMemo:
    """The last estimated depth of a session's photo, reused while only the edit changes."""

    key: str  # hash of the photo's pixels and the estimation settings
    depth: np.ndarray


@dataclass
class EditView:
    image: np.ndarray  # (H, W, 3) uint8, equal to the photo outside ``mask``
    mask: np.ndarray  # (H, W) uint8, 255 = regenerated
    edited_depth: np.ndarray  # (H, W, 3) uint8 colour map of the edited depth
    files: list[Path]
    memo: DepthMemo


def painted_mask(layers: Sequence[str | Path], size: tuple[int, int], ctx: ServeContext) -> np.ndarray:
    """The union ``(H, W)`` bool of brush layers: painted = alpha > 0 (a layer without alpha: white pixels).

    Layers of another size (a scaled canvas) are resized to ``size`` (H, W) by nearest neighbour.
    """
    mask = np.zeros(size, bool)
    for i, layer in enumerate(layers):
        header = check_image_upload(layer, ctx.limits, f"mask layer {i + 1}")
        with PIL.Image.open(layer, formats=[header.format]) as img:
            img.load()
            if "A" in img.getbands() or "transparency" in img.info:
                painted = img.convert("RGBA").getchannel("A").point(lambda v: 255 if v > 0 else 0)
            else:
                painted = img.convert("L").point(lambda v: 255 if v > 127 else 0)
        if painted.size != (size[1], size[0]):
            painted = painted.resize((size[1], size[0]), PIL.Image.NEAREST)
        mask |= np.asarray(painted) > 0
    return mask


def edit_tab(ctx: ServeContext, photo: str | Path, layers: Sequence[str | Path], offset=-0.1, steps=20, seed=0,
             memo: DepthMemo | None = None, progress: Progress = no_progress) -> EditView:
    """Regenerate the painted region of a photo after pushing (offset > 0) or pulling (< 0) its depth.

    The depth is estimated (or taken from ``memo`` for the same photo); the painted region is
    displaced by ``offset`` (relative depth units, feathered); the region regenerated is the
    painted one plus where the depth changed (:func:`mask_from_depth_edit`, as ``jointportrait
    edit`` derives it); :func:`edit_with_depth` keeps every other pixel.
    """
    offset = check_number("push / pull", offset, -1, 1)
    steps = check_number("steps", steps, 1, MAX_STEPS, integer=True)
    image = load_image_upload(photo, ctx.limits, "photo")
    size = (image.height, image.width)
    region = painted_mask(layers, size, ctx)
    if not region.any():
        raise InputError("paint the region to change on the photo with the brush first")
    key = hashlib.sha256(np.asarray(image).tobytes() + f"{size}|{seed}".encode()).hexdigest()
    if memo is not None and memo.key == key:
        depth = memo.depth
    else:
        depth = _estimate(ctx, image, 10, 1, ctx.native_resolution, seed, progress).depth
        memo = DepthMemo(key, depth)
    edited = push_pull_depth(depth, region, offset, feather=FEATHER * min(size))
    mask = region | mask_from_depth_edit(depth, edited)
    progress(0.5, "regenerating the painted region")
    generator = _generator(seed)
    with ctx.model_lock:
        result = edit_with_depth(ctx.pipe, image, edited, mask, num_inference_steps=steps,
                                 processing_resolution=ctx.native_resolution, generator=generator)
    out = ctx.workspace.call_dir()
    files = [save_image(out / "portrait_edit.png", result.image),
             save_depth_npy(out / "portrait_edited_depth.npy", edited),
             save_image(out / "portrait_edit_mask.png", (mask * 255).astype(np.uint8))]
    progress(1.0, "done")
    return EditView(np.asarray(result.image), (mask * 255).astype(np.uint8),
                    colorize_depth(edited, lo=float(depth.min()), hi=float(depth.max())), files, memo)


# ---------------------------------------------------------------- joint generation


@dataclass
class GenerateView:
    images: list[np.ndarray]  # N x (H, W, 3) uint8
    depths: list[np.ndarray]  # N x (H, W, 3) uint8 colour maps
    files: list[Path]


def generate_tab(ctx: ServeContext, reference: str | Path, num_samples=2, steps=20, guidance_scale=1.0, seed=0,
                 progress: Progress = no_progress) -> GenerateView:
    """Reference -> N samples of RGB + depth, the pipeline call of ``jointportrait generate``."""
    num_samples = check_number("samples", num_samples, 1, MAX_SAMPLES, integer=True)
    steps = check_number("steps", steps, 1, MAX_STEPS, integer=True)
    guidance_scale = check_number("reference guidance", guidance_scale, 0, 20)
    reference_image = load_image_upload(reference, ctx.limits, "reference")
    generator = _generator(seed)
    progress(0.05, "generating")
    with ctx.model_lock:
        result = ctx.pipe(reference_image, num_images_per_reference=num_samples, num_inference_steps=steps,
                          guidance_scale=guidance_scale, generator=generator)
    out = ctx.workspace.call_dir()
    images, colors, files = [], [], []
    for i, (image, depth) in enumerate(zip(result.images, result.depths)):
        stem = f"sample_{i:02d}"
        files.append(save_image(out / f"{stem}.png", image))
        paths = save_depth_outputs(out, stem, depth, overwrite=False)
        files += [paths["npy"], paths["png16"]]
        images.append(np.asarray(image))
        colors.append(colorize_depth(depth, lo=0.0, hi=1.0))
    progress(1.0, "done")
    return GenerateView(images, colors, files)


# ---------------------------------------------------------------- animation


@dataclass
class AnimationView:
    video: Path  # RGB frames, H.264 mp4 (gif when libx264 is missing)
    depth_video: Path  # colour-mapped depth frames, same format
    files: list[Path]  # animation.mp4 (side by side, as the CLI), the two videos, frames.zip
    animation: Animation
    driving: DrivingDepth
    summary: str  # one line: frames, clips, driving source, seam score


def stage_driving(ctx: ServeContext, uploads: Sequence[str | Path], out: Path) -> tuple[str, Path, dict[str, str]]:
    """Check the driving uploads by content and link them into ``out/driving/`` under fixed names.

    All uploads must be of one kind: depth maps (``.npy`` / 16-bit PNG) or frames (PNG / JPEG),
    one per frame, taken in the order of their file names (as the CLI sorts a folder), or one
    video. Returns ``(kind, source, names)``: ``"depth"`` or ``"video"``, the folder (or video
    file) to read, and server names -> upload names (for messages).
    """
    if not uploads:
        raise InputError("driving: upload depth maps, frames or a video first")
    if len(uploads) > MAX_FRAMES:
        raise InputError(f"driving: {len(uploads)} files; at most {MAX_FRAMES} frames per animation")
    ordered = sorted((Path(u) for u in uploads), key=lambda p: p.name)
    kinds = [driving_upload_kind(p, ctx.limits, f"driving file {p.name}") for p in ordered]
    if len(set(kinds)) > 1:
        raise InputError(f"driving: the files mix {' and '.join(sorted(set(kinds)))} files; upload depth maps, "
                         "frames or one video")
    kind = kinds[0]
    folder = out / "driving"
    folder.mkdir()
    if kind == "video":
        if len(ordered) > 1:
            raise InputError(f"driving: {len(ordered)} videos; upload one")
        container, _, _ = check_video_upload(ordered[0], ctx.limits, f"driving video {ordered[0].name}",
                                             MAX_VIDEO_PIXELS)
        target = folder / f"video.{container.lower()}"  # ffmpeg's reader goes by the suffix
        _link(ordered[0], target)
        return "video", target, {str(target): f"driving video {ordered[0].name}", str(folder): "driving"}
    names = {str(folder): "driving"}
    for i, upload in enumerate(ordered):
        what = f"driving file {upload.name}"
        header = check_depth_upload(upload, ctx.limits, what) if kind == "depth" else check_image_upload(
            upload, ctx.limits, what)
        suffix = {"NPY": ".npy", "PNG": ".png", "JPEG": ".jpg"}[header.format]
        target = folder / f"{i:04d}{suffix}"
        _link(upload, target)
        names[str(target)] = what
    return ("depth" if kind == "depth" else "video"), folder, names


def _link(source: Path, target: Path) -> None:
    """``target`` holds ``source``'s bytes (a hard link when the file system allows, else a copy)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _server_paths_named(message: str, names: dict[str, str]) -> str:
    """A library message with the server's paths replaced by what the user uploaded (longest paths first)."""
    for path in sorted(names, key=len, reverse=True):
        message = message.replace(path, names[path])
    return message.replace("--num-frames", "frames")


def _zip_frames(files: Sequence[Path], out: Path) -> Path:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, f"frames/{path.name}")
    return out


def animate_tab(ctx: ServeContext, reference: str | Path, driving: Sequence[str | Path], num_frames=0,
                clip_length=14, motion_frames=4, steps=20, seed=0, independent_clips=False, fps=25.0,
                estimation_steps=1, progress: Progress = no_progress) -> AnimationView:
    """Reference + driving depth (uploaded depth maps, or frames / a video whose depth is estimated per frame)
    -> a video of RGB and depth, the library calls of ``jointportrait animate`` with its defaults.

    ``num_frames``: 0 = every uploaded frame (a video: its first :data:`MAX_FRAMES`). Outputs as the
    CLI writes them (``frames/NNNN_rgb.png``, ``frames/NNNN_depth.npy`` zipped, ``animation.mp4``
    side by side) plus the RGB and the depth video on their own for the page.
    """
    if not ctx.has_motion:
        raise InputError("this model has no motion modules: animation needs a video model (jointportrait create "
                         "--video, or stage 3 training)")
    num_frames = check_number("frames", num_frames, 0, MAX_FRAMES, integer=True) or None
    clip_length = check_number("clip length", clip_length, 1, MAX_FRAMES, integer=True)
    motion_frames = check_number("motion frames", motion_frames, 0, clip_length, integer=True)
    steps = check_number("steps", steps, 1, MAX_STEPS, integer=True)
    estimation_steps = check_number("depth estimation steps", estimation_steps, 1, MAX_STEPS, integer=True)
    fps = check_number("frames per second", fps, 1, MAX_FPS)
    reference_image = load_image_upload(reference, ctx.limits, "reference")
    seed = check_number("seed", seed, 0, 2**32 - 1, integer=True)
    out = ctx.workspace.call_dir()
    kind, source, names = stage_driving(ctx, driving, out)
    progress(0.02, "waiting for the model" if ctx.model_lock.locked() else "driving depth")
    try:
        with ctx.model_lock:
            if kind == "depth":
                source_depth = load_depth_folder(source)
            else:
                source_depth = estimate_driving_depth(
                    ctx.pipe, source, num_frames or MAX_FRAMES, estimation_steps, _generator(seed),
                    lambda done: progress(0.05 + 0.25 * done / (num_frames or MAX_FRAMES), f"depth of frame {done}"))
            if num_frames is not None and num_frames > len(source_depth):
                raise InputError(f"frames: the driving upload has {len(source_depth)} frames, {num_frames} were asked")
            source_depth = source_depth.first(num_frames)
            total = len(source_depth)
            progress(0.3, "animating")
            try:
                result = animate(ctx.video_pipe, reference_image, source_depth, clip_length=clip_length,
                                 motion_frames=motion_frames, num_inference_steps=steps,
                                 independent_clips=bool(independent_clips), generator=_generator(seed),
                                 on_clip_end=lambda clip, done: progress(0.3 + 0.6 * done / total,
                                                                         f"animating: frame {done} of {total}"))
            except ValueError as exc:  # the pipeline's check_inputs names the argument, as for the CLI
                raise InputError(str(exc).replace("`", "")) from None
    except JointPortraitError as exc:
        raise InputError(_server_paths_named(str(exc), names)) from None
    progress(0.9, "writing the video")
    written = write_animation(out, result, fps)
    video = write_video(out / "animation_rgb.mp4", rgb_frames(result), fps)
    depth_video = write_video(out / "animation_depth.mp4", depth_frames(result), fps)
    frames_zip = _zip_frames([p for pair in zip(written.rgb, written.depth) for p in pair], out / "frames.zip")
    seam = result.seam.score
    summary = (f"{total} frames in {len(result.clip_starts)} clips of {clip_length} "
               f"({'independent clips' if independent_clips else f'{motion_frames} motion frame' + 's' * (motion_frames != 1)}), driven by "
               f"{'uploaded depth maps' if kind == 'depth' else 'depth estimated from each frame'}; seam score "
               f"{'n/a (one clip)' if not math.isfinite(seam) else f'{seam:.3f} (1 = seamless)'}")
    progress(1.0, "done")
    return AnimationView(video, depth_video, [written.video, video, depth_video, frames_zip], result,
                         source_depth, summary)
