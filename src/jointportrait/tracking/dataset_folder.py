"""The folder of a dataset tracked clip by clip, shard by shard (paper Sec. 5.1: in-the-wild clips with
pseudo ground-truth depth), and the merge of its shards into one training manifest.

Layout of ``OUT`` (``jointportrait track --clips DIR --out OUT``)::

    clips/<name>/                 one clip, the layout of ``track --video`` (jointportrait.tracking.export)
    clips/<name>/done.json        written last, inside the clip's folder: the clip is complete
    clips/.<name>.partial-<tag>/  a clip being written (renamed to clips/<name>/ when complete)
    failed/<name>.json            a clip that cannot be tracked (no face, a diverged fit, a bad file) and why
    shards/shard-IIII-of-NNNN.json  a finished shard: its clips, done or failed, and the clip list's digest
    manifest.jsonl                the merged manifest: every frame of every done clip, paths relative to OUT

A clip's folder appears in one ``os.replace`` of its complete partial folder,
so a killed run leaves at most a partial folder (removed when the clip is
tracked again) and never a half-written clip. The merged manifest is what
``FrameDataset`` / ``ClipDataset`` / ``jointportrait train`` read
(``data.root = OUT``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jointportrait.data.manifest import MANIFEST_NAME, write_manifest
from jointportrait.errors import InputError, MissingPathError
from jointportrait.tracking.shards import Shard, clip_list_digest

CLIPS_DIR, FAILED_DIR, SHARDS_DIR = "clips", "failed", "shards"
DONE_NAME = "done.json"
PATH_FIELDS = ("image", "depth", "mask", "skin_mask", "depth_preview")  # paths in a clip's manifest records


def clip_dir(out: Path, name: str) -> Path:
    return out / CLIPS_DIR / name


def failed_path(out: Path, name: str) -> Path:
    return out / FAILED_DIR / f"{name}.json"


def shard_manifest_path(out: Path, shard: Shard) -> Path:
    return out / SHARDS_DIR / f"shard-{shard.index:04d}-of-{shard.count:04d}.json"


def is_done(out: Path, name: str) -> bool:
    return (clip_dir(out, name) / DONE_NAME).is_file()


def read_done(out: Path, name: str) -> dict:
    """The done marker of clip ``name`` (what :func:`publish_clip` wrote)."""
    path = clip_dir(out, name) / DONE_NAME
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable done marker ({exc}); remove the clip's folder to track it again") \
            from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a done marker; remove the clip's folder to track it again")
    return obj


def _writer() -> str:
    """This process, unique across the machines sharing the output folder."""
    return f"{socket.gethostname()}-{os.getpid()}"


def write_json_atomic(path: Path, obj: object) -> None:
    """Write ``obj`` as JSON through a temporary file and one ``os.replace``: readers see all of it or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_writer()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_dataset_folder(out: Path) -> None:
    """Refuse an ``--out`` that holds a dataset not made by a clip-folder run (its manifest would be replaced)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if (out / MANIFEST_NAME).exists() and not (out / SHARDS_DIR).is_dir():
        raise InputError(f"{out}: holds a dataset not made by 'track --clips' ({MANIFEST_NAME} without "
                         f"{SHARDS_DIR}/); choose another --out")


def start_partial(out: Path, name: str) -> Path:
    """A fresh, empty folder to write clip ``name`` into; the clip's stale partial and swapped-out folders (a
    killed run's) are removed first. Only the shard that owns a clip writes it, so no live writer is disturbed."""
    parent = out / CLIPS_DIR
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.iterdir():  # not glob: a clip name may hold [ ] * ?
        if stale.name.startswith((f".{name}.partial-", f".{name}.old-")):
            shutil.rmtree(stale, ignore_errors=True)
    partial = parent / f".{name}.partial-{_writer()}"
    partial.mkdir()
    return partial


def publish_clip(out: Path, name: str, partial: Path, done: dict) -> Path:
    """Write the done marker into ``partial`` and move it to ``clips/<name>/`` in one rename; an existing clip
    folder (``--overwrite``) is swapped out first and removed only after the new one is in place."""
    write_json_atomic(partial / DONE_NAME, done)
    final = clip_dir(out, name)
    old = None
    if final.exists():
        old = final.with_name(f".{name}.old-{_writer()}")
        os.replace(final, old)
    os.replace(partial, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    failed_path(out, name).unlink(missing_ok=True)
    return final


def record_failure(out: Path, name: str, reason: str) -> None:
    write_json_atomic(failed_path(out, name), {"clip": name, "reason": reason})


def read_failure(out: Path, name: str) -> str | None:
    path = failed_path(out, name)
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["reason"])
    except (ValueError, KeyError, TypeError):
        return f"failed (unreadable {path})"


@dataclass
class ShardClip:
    """One clip as its shard manifest lists it: ``status`` is ``done`` (with ``frames``) or ``failed``."""

    name: str
    status: str
    frames: int = 0
    reason: str | None = None


def write_shard_manifest(out: Path, shard: Shard, all_names: list[str], clips: Iterable[ShardClip]) -> Path:
    """Record a finished shard: every clip it owns, done or failed, and the digest of the whole clip list."""
    path = shard_manifest_path(out, shard)
    write_json_atomic(path, {
        "shard": shard.index, "num_shards": shard.count, "num_clips": len(all_names),
        "clip_list_sha256": clip_list_digest(all_names),
        "clips": [{k: v for k, v in vars(c).items() if v is not None} for c in sorted(clips, key=lambda c: c.name)],
    })
    return path


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable shard manifest ({exc})") from None
    if not isinstance(obj, dict) or not {"shard", "num_shards", "num_clips", "clip_list_sha256", "clips"} <= set(obj):
        raise InputError(f"{path}: not a shard manifest (keys shard, num_shards, num_clips, clip_list_sha256, clips)")
    return obj


@dataclass
class MergeResult:
    """What :func:`merge_shards` wrote: the manifest, its number of frames, the done and failed clips."""

    manifest: Path
    frames: int
    done: list[str]
    failed: dict[str, str]
    num_shards: int


def _clip_records(out: Path, name: str) -> list[dict]:
    folder = clip_dir(out, name)
    if not (folder / DONE_NAME).is_file():
        raise MissingPathError(f"{folder / DONE_NAME}: missing, but its shard lists clip {name!r} as done "
                               "(was the clip's folder removed?)")
    records = []
    manifest = folder / MANIFEST_NAME
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest}: unreadable ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{manifest} line {number}: not valid JSON ({exc})") from None
            if not isinstance(record, dict):
                raise InputError(f"{manifest} line {number}: expected a JSON object")
            for key in PATH_FIELDS:
                if isinstance(record.get(key), str):
                    record[key] = f"{CLIPS_DIR}/{name}/{record[key]}"
            records.append(record)
    return records


def merge_shards(out: Path, check_files: bool = True) -> MergeResult:
    """Gather the shard manifests of ``out`` into ``out/manifest.jsonl`` (clips in name order).

    Refuses, with one line naming the problem: no shard manifests, shards of different totals, a shard that
    has not finished, shards that saw different clip lists, a clip in two shards, a clip in none.
    """
    folder = out / SHARDS_DIR
    paths = sorted(folder.glob("shard-*-of-*.json")) if folder.is_dir() else []
    if not paths:
        raise MissingPathError(f"{folder}: no shard manifests (run 'jointportrait track --clips DIR --out {out} "
                               "--shard i/n' for every shard first)")
    shards = [(p, _read_json(p)) for p in paths]
    counts = sorted({int(s["num_shards"]) for _, s in shards})
    if len(counts) > 1:
        raise InputError(f"{folder}: shard manifests of different shard totals ({', '.join(map(str, counts))}); "
                         "remove the stale ones")
    count = counts[0]
    present = {int(s["shard"]) for _, s in shards}
    missing_shards = [i for i in range(count) if i not in present]
    if missing_shards:
        shown = ", ".join(f"{i}/{count}" for i in missing_shards[:8])
        raise MissingPathError(f"{folder}: {len(missing_shards)} of {count} shards have not finished ({shown}"
                               f"{', ...' if len(missing_shards) > 8 else ''}); their clips would be missing")
    digests = {s["clip_list_sha256"] for _, s in shards}
    if len(digests) > 1:
        sizes = ", ".join(f"shard {s['shard']}: {s['num_clips']} clips" for _, s in shards[:4])
        raise InputError(f"{folder}: the shards saw different clip folders ({sizes}); rerun them on one clip list")
    owner: dict[str, int] = {}
    done, failed = [], {}
    for _, s in shards:
        for clip in s["clips"]:
            name = clip["name"]
            if name in owner:
                raise InputError(f"{folder}: clip {name!r} is in shard {owner[name]}/{count} and in shard "
                                 f"{s['shard']}/{count}")
            owner[name] = int(s["shard"])
            if clip["status"] == "done":
                done.append(name)
            else:
                failed[name] = clip.get("reason") or "failed"
    expected = int(shards[0][1]["num_clips"])
    if len(owner) != expected:
        raise InputError(f"{folder}: the shards list {len(owner)} clips, but the clip folder had {expected}")
    if not done:
        raise InputError(f"{folder}: no clip could be tracked ({len(failed)} failed), nothing to merge")
    records = [r for name in sorted(done) for r in _clip_records(out, name)]
    tmp = out / f".{MANIFEST_NAME}.{_writer()}.tmp"
    write_manifest(tmp, records, check_files=check_files)
    os.replace(tmp, out / MANIFEST_NAME)
    return MergeResult(out / MANIFEST_NAME, len(records), sorted(done), dict(sorted(failed.items())), count)
