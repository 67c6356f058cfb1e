"""Which clips of a folder a shard tracks (paper Sec. 5.1: hours of in-the-wild video, tracked clip by clip).

A folder of clips is split over ``n`` shards with no coordination between
them: the clips are sorted by name (code-point order, the same on every
machine and locale) and clip ``k`` of that order belongs to shard ``k mod n``.
Any scheduler that hands each job its index (a SLURM array's
``SLURM_ARRAY_TASK_ID``, a Kubernetes indexed job's ``JOB_COMPLETION_INDEX``)
therefore spreads a dataset: the shards partition the clips exactly and their
sizes differ by at most one. Every shard also records a digest of the whole
sorted name list, so that merging refuses shards that saw different folders.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from jointportrait.errors import InputError, MissingPathError
from jointportrait.tracking.video import FRAME_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
LANDMARK_SUFFIXES = (".npy", ".json")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, position: int) -> bool:
        """Whether the clip at ``position`` of the sorted clip list belongs to this shard."""
        return position % self.count == self.index


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> :class:`Shard`; a one-line :class:`InputError` for anything else."""
    match = _SHARD.match(text)
    if match is None:
        raise InputError(f"--shard must be i/n with whole numbers 0 <= i < n (e.g. 3/16), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise InputError(f"--shard {text}: the number of shards must be at least 1")
    if index >= count:
        raise InputError(f"--shard {text}: the index must be below the number of shards ({count}), "
                         f"i.e. 0..{count - 1}")
    return Shard(index, count)


@dataclass(frozen=True)
class ClipSource:
    """One clip of a clip folder: its ``name`` (the file's stem or the frame folder's name), the video file or
    frame folder, and its landmarks file (None: detect them)."""

    name: str
    video: Path
    landmarks: Path | None = None


def _is_clip(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())
    return path.suffix.lower() in VIDEO_SUFFIXES


def list_clips(folder: str | os.PathLike, landmarks: str | os.PathLike | None = None) -> list[ClipSource]:
    """The clips of ``folder`` sorted by name: video files and sub-folders of ``.png``/``.jpg`` frames.

    ``landmarks``: a folder with ``<name>.npy`` or ``<name>.json`` per clip (the ``--landmarks`` format of
    ``track``); a clip without one is an error naming it. Two clips of one name (``a.mp4`` and ``a/``) are an
    error too: the name is the clip's id in the dataset.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingPathError(f"{folder}: no such folder of clips")
    by_name: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not _is_clip(path):
            continue
        name = path.name if path.is_dir() else path.stem
        if name in by_name:
            raise InputError(f"{folder}: two clips are named {name!r} ({by_name[name].name} and {path.name}); "
                             "clip names must be unique")
        by_name[name] = path
    if not by_name:
        raise InputError(f"{folder}: no clips here (video files {'/'.join(VIDEO_SUFFIXES)} or folders of "
                         ".png/.jpg frames)")
    marks = Path(landmarks) if landmarks is not None else None
    if marks is not None and not marks.is_dir():
        raise MissingPathError(f"{marks}: --landmarks with --clips must be a folder of <clip>.npy/.json files")
    clips = []
    for name in sorted(by_name):
        found = None
        if marks is not None:
            found = next((marks / f"{name}{s}" for s in LANDMARK_SUFFIXES if (marks / f"{name}{s}").is_file()), None)
            if found is None:
                raise MissingPathError(f"{marks}: no landmarks for clip {name!r} ({name}.npy or {name}.json)")
        clips.append(ClipSource(name, by_name[name], found))
    return clips


def shard_clips(clips: list[ClipSource], shard: Shard) -> list[ClipSource]:
    """The clips of ``shard``: every ``count``-th clip of the name-sorted list, from position ``index``."""
    ordered = sorted(clips, key=lambda c: c.name)
    return [c for k, c in enumerate(ordered) if shard.owns(k)]


def clip_list_digest(names: list[str]) -> str:
    """SHA-256 of the sorted clip names (one per line): equal iff two shards saw the same clip list."""
    return hashlib.sha256("".join(f"{n}\n" for n in sorted(names)).encode("utf-8")).hexdigest()
