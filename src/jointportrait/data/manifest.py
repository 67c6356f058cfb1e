"""Dataset manifests: one JSON object per frame in ``manifest.jsonl`` (DESIGN.md, "Data on disk").

Required keys: ``image``, ``depth``, ``mask`` (relative paths), ``subject``,
``frame`` (int), ``split`` (train | val | test), ``source`` (studio | wild).
Optional: ``skin_mask`` (path), ``clip`` (str or null), ``intrinsics`` (3x3),
``depth_scale`` (float, metres or centimetres per stored unit; 1.0 if absent);
other keys are kept in :attr:`FrameRecord.extra`. Reading and writing both
validate every record, and every error names the manifest file and line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from jointportrait.errors import InputError, MissingPathError

MANIFEST_NAME = "manifest.jsonl"
PATH_KEYS = ("image", "depth", "mask")
SPLITS = ("train", "val", "test")
SOURCES = ("studio", "wild")
KNOWN_KEYS = {"image", "depth", "mask", "skin_mask", "subject", "clip", "frame", "split", "source", "intrinsics",
              "depth_scale"}


@dataclass(frozen=True)
class FrameRecord:
    """One validated manifest line; paths are absolute. ``line`` is 1-based, for error messages."""

    image: Path
    depth: Path
    mask: Path
    skin_mask: Path | None
    subject: str
    clip: str | None
    frame: int
    split: str
    source: str
    intrinsics: tuple[tuple[float, ...], ...] | None
    depth_scale: float
    manifest: Path
    line: int
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def where(self) -> str:
        return f"{self.manifest} line {self.line}"


def parse_record(obj: object, root: Path, where: str, manifest: Path, line: int,
                 check_files: bool = True) -> FrameRecord:
    """Validate one decoded manifest object; ``where`` prefixes every error."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    missing = [k for k in (*PATH_KEYS, "subject", "frame", "split", "source") if k not in obj]
    if missing:
        raise InputError(f"{where}: missing key(s) {', '.join(missing)}")
    paths: dict[str, Path | None] = {}
    for key in (*PATH_KEYS, "skin_mask"):
        value = obj.get(key)
        if value is None and key == "skin_mask":
            paths[key] = None
            continue
        if not isinstance(value, str) or not value:
            raise InputError(f"{where}: {key!r} must be a relative path string, found {value!r}")
        if os.path.isabs(value):
            raise InputError(f"{where}: {key!r} must be relative to the dataset folder, found {value!r}")
        path = root / value
        if check_files and not path.is_file():
            raise MissingPathError(f"{where}: {key} file {path} does not exist")
        paths[key] = path
    subject, clip, frame = obj["subject"], obj.get("clip"), obj["frame"]
    if not isinstance(subject, str) or not subject:
        raise InputError(f"{where}: 'subject' must be a non-empty string, found {subject!r}")
    if clip is not None and (not isinstance(clip, str) or not clip):
        raise InputError(f"{where}: 'clip' must be a non-empty string or null, found {clip!r}")
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise InputError(f"{where}: 'frame' must be a non-negative integer, found {frame!r}")
    if obj["split"] not in SPLITS:
        raise InputError(f"{where}: 'split' must be one of {', '.join(SPLITS)}, found {obj['split']!r}")
    if obj["source"] not in SOURCES:
        raise InputError(f"{where}: 'source' must be one of {', '.join(SOURCES)}, found {obj['source']!r}")
    intrinsics = obj.get("intrinsics")
    if intrinsics is not None:
        ok = (isinstance(intrinsics, list) and len(intrinsics) == 3
              and all(isinstance(r, list) and len(r) == 3 for r in intrinsics)
              and all(isinstance(x, int | float) and math.isfinite(x) for r in intrinsics for x in r))
        if not ok:
            raise InputError(f"{where}: 'intrinsics' must be a 3x3 list of numbers, found {intrinsics!r}")
        intrinsics = tuple(tuple(float(x) for x in r) for r in intrinsics)
    scale = obj.get("depth_scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
        raise InputError(f"{where}: 'depth_scale' must be a positive number, found {scale!r}")
    return FrameRecord(
        image=paths["image"], depth=paths["depth"], mask=paths["mask"], skin_mask=paths["skin_mask"],
        subject=subject, clip=clip, frame=frame, split=obj["split"], source=obj["source"],
        intrinsics=intrinsics, depth_scale=float(scale), manifest=manifest, line=line,
        extra={k: v for k, v in obj.items() if k not in KNOWN_KEYS},
    )


def manifest_path(root: str | os.PathLike) -> Path:
    """``root/manifest.jsonl`` (``root`` may also be the manifest file itself)."""
    root = Path(root)
    path = root if root.suffix == ".jsonl" else root / MANIFEST_NAME
    if not path.is_file():
        raise MissingPathError(f"{path}: no dataset manifest here (expected {MANIFEST_NAME})")
    return path


def read_manifest(root: str | os.PathLike, check_files: bool = True) -> list[FrameRecord]:
    """All records of a dataset folder, validated; an error names the file and line."""
    path = manifest_path(root)
    records = []
    seen: dict[tuple[str, str | None, int], int] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path} line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{where}: not UTF-8 text") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits, deep nesting
                raise InputError(f"{where}: not usable JSON ({type(exc).__name__})") from None
            record = parse_record(obj, path.parent, where, path, number, check_files)
            key = (record.subject, record.clip, record.frame) if record.clip else (record.subject, None, number)
            if key in seen:
                raise InputError(f"{where}: duplicate frame {record.frame} of clip {record.clip} "
                                 f"(first on line {seen[key]})")
            seen[key] = number
            records.append(record)
    if not records:
        raise InputError(f"{path}: manifest has no records")
    return records


def write_manifest(path: str | os.PathLike, records: list[dict], check_files: bool = True) -> Path:
    """Validate ``records`` (dicts with paths relative to the manifest's folder) and write them as JSONL."""
    path = Path(path)
    for number, obj in enumerate(records, start=1):
        parse_record(obj, path.parent, f"{path} record {number}", path, number, check_files)
    text = "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in records)
    path.write_text(text, encoding="utf-8")
    return path
