"""Frames in and out of the tracker (paper Sec. 5.1: in-the-wild video clips).

A clip is a video file (read with imageio's ffmpeg plugin) or a folder of
PNG/JPEG frames sorted by file name. The overlay video is written as H.264
``.mp4`` through imageio-ffmpeg, or as a GIF when that encoder is missing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from jointportrait.errors import InputError, MissingPathError
from jointportrait.io import load_image

logger = logging.getLogger(__name__)

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_FPS = 25.0


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Frames ``(F, H, W, 3)`` uint8 RGB and the frame rate of a video file or a folder of frames; with
    ``max_frames``, only the first ``max_frames`` are read."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such video file or frame folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no .png/.jpg frames in this folder")
        frames = [np.asarray(load_image(f)) for f in files[:max_frames]]
        fps = DEFAULT_FPS
    else:
        import imageio.v2 as imageio

        try:
            with imageio.get_reader(path, format="ffmpeg") as reader:
                fps = float(reader.get_meta_data().get("fps") or DEFAULT_FPS)
                frames = []
                for frame in reader:
                    if max_frames is not None and len(frames) >= max_frames:
                        break
                    frames.append(np.asarray(frame)[..., :3])
        except (OSError, RuntimeError, ValueError, IndexError) as exc:
            raise InputError(f"{path}: not a readable video ({exc})") from None
        if not frames:
            raise InputError(f"{path}: the video has no frames")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise InputError(f"{path}: frames differ in size ({', '.join(str(s[:2]) for s in sorted(shapes))})")
    return np.stack(frames).astype(np.uint8), fps


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    """Write frames ``(F, H, W, 3)`` uint8 to ``path`` (``.mp4``); falls back to ``path.with_suffix('.gif')``.

    Returns the path written.
    """
    import imageio.v2 as imageio

    try:
        with imageio.get_writer(path, format="ffmpeg", fps=fps, codec="libx264", quality=8,
                                macro_block_size=2, pixelformat="yuv420p") as writer:
            for frame in frames:
                writer.append_data(frame)
        return path
    except (OSError, RuntimeError, ValueError) as exc:
        path.unlink(missing_ok=True)
        gif = path.with_suffix(".gif")
        logger.warning("could not encode %s with libx264 (%s); writing %s instead", path, exc, gif)
        imageio.mimsave(gif, list(frames), duration=1.0 / fps)
        return gif
