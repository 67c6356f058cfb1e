"""Atomic, verified training checkpoints: save, verify, find, keep the last K (supplementary 7.2).

A checkpoint is ``DIR/checkpoint-<step>/``, written by ``accelerator.save_state``
(model as safetensors; optimizer, LR scheduler and the RNG states of every
process as accelerate's pickles) plus the trainer's own states (``TrainState``,
the EMA) as JSON + safetensors, and ``SHA256SUMS``: the SHA-256 of every file, in
the format ``sha256sum -c`` reads. It is first written to
``checkpoint-<step>.tmp``, every file is fsynced, and only then is the folder
renamed; a rename is atomic, so a folder named ``checkpoint-<step>`` is always
complete, and a kill during a save leaves only a ``.tmp`` folder, which the next
run deletes (with a warning). A save that runs out of disk space deletes its
``.tmp`` folder and raises :class:`~jointportrait.errors.DiskFullError`; the
previous checkpoint is untouched (old ones are pruned only after a save succeeded).

Nothing is trusted blindly: :func:`verify_checkpoint` re-hashes every file, and
resuming (:func:`resolve_resume`) takes the newest checkpoint that verifies,
with a warning naming each newer corrupt one (``"strict"`` stops instead).
Loading (:func:`load_checkpoint`) verifies again and unpickles accelerate's
files with ``weights_only=True`` (tensors and plain containers only). Pickles
are still not safe to accept from someone else (docs/TRAINING.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from jointportrait.errors import (
    CheckpointError,
    DiskFullError,
    MissingPathError,
    is_disk_full,
    is_out_of_memory,
)

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint-(\d+)$")
CHECKSUMS = "SHA256SUMS"
_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")
RESUME_MODES = ("latest", "strict")


@dataclass
class TrainState:
    """Counters restored on resume; with them the data order and the noise of every later step are fixed."""

    step: int = 0  # optimizer steps done
    micro_batches: int = 0  # micro-batches consumed per process (the data position)
    skipped_steps: int = 0  # steps dropped for a non-finite loss

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.step, self.micro_batches, self.skipped_steps = state["step"], state["micro_batches"], state["skipped_steps"]


# ------------------------------------------------------------------- finding
def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints ``(step, path)`` sorted by step (complete = renamed; not yet verified)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step (not verified; see :func:`latest_intact_checkpoint`)."""
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1][1] if checkpoints else None


def latest_intact_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint whose files match ``SHA256SUMS``; each newer corrupt one is logged as a warning."""
    for _, path in reversed(list_checkpoints(output_dir)):
        problems = verify_checkpoint(path)
        if not problems:
            return path
        logger.warning("%s is corrupt (%s); trying the one before", path, "; ".join(problems[:3]))
    return None


def resolve_resume(output_dir: str | Path, resume: str) -> Path:
    """The checkpoint to resume from, verified.

    ``"latest"``: the newest intact checkpoint of ``output_dir`` (newer corrupt ones
    are named in a warning); ``"strict"``: the newest checkpoint, which must be
    intact; otherwise a checkpoint folder, which must be intact.
    """
    if resume == "latest":
        path = latest_intact_checkpoint(output_dir)
        if path is None:
            found = list_checkpoints(output_dir)
            if not found:
                raise MissingPathError(f"{output_dir}: no complete checkpoint to resume from (--resume latest)")
            raise CheckpointError(f"{output_dir}: all {len(found)} checkpoints are corrupt; nothing to resume from "
                                  "(--resume latest)")
        newest = latest_checkpoint(output_dir)
        if path != newest:
            logger.warning("resuming from %s instead of the corrupt %s", path.name, newest.name)
        return path
    if resume == "strict":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise MissingPathError(f"{output_dir}: no complete checkpoint to resume from (--resume strict)")
    else:
        path = Path(resume)
        if not path.is_dir() or not _NAME.match(path.name):
            raise MissingPathError(f"{resume}: not a checkpoint folder (expected .../checkpoint-<step>, "
                                   f"or one of {', '.join(RESUME_MODES)})")
    problems = verify_checkpoint(path)
    if problems:
        raise CheckpointError(f"{path}: corrupt checkpoint ({'; '.join(problems[:3])}); not resuming from it")
    return path


def remove_incomplete(output_dir: str | Path) -> list[Path]:
    """Delete ``checkpoint-*.tmp`` folders left by a run killed while saving (each named in a warning)."""
    removed = []
    for path in sorted(Path(output_dir).glob("checkpoint-*.tmp")):
        logger.warning("removing %s, left incomplete by an interrupted save", path)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


# --------------------------------------------------------------- integrity
def file_sha256(path: str | Path, chunk: int = 4 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Every file below ``folder`` except ``SHA256SUMS``, as sorted POSIX paths relative to ``folder``."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != CHECKSUMS)


def write_checksums(folder: str | Path) -> Path:
    """Write ``folder/SHA256SUMS`` with the SHA-256 of every other file (``sha256sum -c`` format)."""
    folder = Path(folder)
    lines = [f"{file_sha256(folder / name)}  {name}\n" for name in _files(folder)]
    path = folder / CHECKSUMS
    path.write_text("".join(lines), encoding="utf-8")
    return path


def verify_checkpoint(folder: str | Path) -> list[str]:
    """What is wrong with a checkpoint's files (empty when every file matches its recorded SHA-256).

    A file missing, changed, or present but not listed is a problem, and so is a
    missing or malformed ``SHA256SUMS``.
    """
    folder = Path(folder)
    sums = folder / CHECKSUMS
    if not sums.is_file():
        return [f"no {CHECKSUMS} (written by an older version, or not by jointportrait train)"]
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return [f"{CHECKSUMS} is not text"]
    expected: dict[str, str] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        match = _CHECKSUM_LINE.match(line)
        name = match.group(2) if match else ""
        if not match or name in expected or name.startswith("/") or ".." in name.split("/"):
            problems.append(f"{CHECKSUMS} line {number} is malformed")
            continue
        expected[name] = match.group(1)
    if not expected:
        problems.append(f"{CHECKSUMS} lists no files")
    present = set(_files(folder))
    for name, digest in expected.items():
        if name not in present:
            problems.append(f"{name}: missing")
        elif file_sha256(folder / name) != digest:
            problems.append(f"{name}: content differs from its recorded SHA-256")
    problems += [f"{name}: not listed in {CHECKSUMS}" for name in sorted(present - set(expected))]
    return problems


# ------------------------------------------------ the trainer's own states
def _save_state(folder: Path, name: str, state: Mapping[str, Any]) -> None:
    """``name.json`` (plain values) + ``name.safetensors`` (tensors, and lists of tensors): no pickle."""
    from safetensors.torch import save_file

    plain: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if torch.is_tensor(value):
            tensors[key] = value
            plain[key] = {"__tensor__": key}
        elif isinstance(value, (list, tuple)) and value and all(torch.is_tensor(v) for v in value):
            names = [f"{key}.{i}" for i in range(len(value))]
            tensors.update(zip(names, value))
            plain[key] = {"__tensors__": names}
        else:
            plain[key] = value
    (folder / f"{name}.json").write_text(json.dumps(plain, indent=1), encoding="utf-8")
    if tensors:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(folder / f"{name}.safetensors"))


def _load_state(folder: Path, name: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    plain = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    file = folder / f"{name}.safetensors"
    tensors = load_file(str(file)) if file.is_file() else {}
    state = {}
    for key, value in plain.items():
        if isinstance(value, dict) and "__tensor__" in value:
            state[key] = tensors[value["__tensor__"]]
        elif isinstance(value, dict) and "__tensors__" in value:
            state[key] = [tensors[n] for n in value["__tensors__"]]
        else:
            state[key] = value
    return state


# ------------------------------------------------------------ save and load
def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(root))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(accelerator, output_dir: str | Path, step: int, keep_last: int,
                    states: Mapping[str, Any] | None = None) -> Path:
    """Write ``checkpoint-<step>`` atomically with its hashes (all processes call this); keep the last ``keep_last``.

    ``states``: name -> object with ``state_dict()`` (e.g. ``{"train_state": ..., "ema": ...}``),
    written by the main process as ``<name>.json`` / ``<name>.safetensors``.
    """
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        if accelerator.is_main_process:
            for name, obj in (states or {}).items():
                _save_state(tmp, name, obj.state_dict())
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_checksums(tmp)
            _fsync_tree(tmp)
    except Exception as exc:
        disk_full = is_disk_full(exc, output_dir)  # looked at before the partial folder is removed
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # frees the space, and leaves nothing that looks resumable
        if disk_full:
            previous = latest_checkpoint(output_dir)
            kept = f"{previous.name} is intact" if previous is not None else "there is no earlier checkpoint"
            raise DiskFullError(f"{output_dir}: no space left on device while saving checkpoint-{step} ({kept}); "
                                "free some space, then continue with --resume latest") from exc
        raise
    if accelerator.is_main_process:
        if final.exists():  # re-saving the same step (e.g. a resumed run): the old copy goes only now
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(output_dir)
        for _, old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("saved %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | Path, states: Mapping[str, Any] | None = None) -> None:
    """Verify ``path`` and restore the prepared objects and ``states`` (the same names as when saved).

    accelerate unpickles its files with ``weights_only=True``; the trainer's states are JSON and
    safetensors. A state object with a ``to`` method (the EMA) is moved to the accelerator's device.
    """
    from safetensors import SafetensorError

    path = Path(path)
    problems = verify_checkpoint(path)
    if problems:
        raise CheckpointError(f"{path}: corrupt checkpoint ({'; '.join(problems[:3])})")
    try:
        accelerator.load_state(str(path))
        for name, obj in (states or {}).items():
            obj.load_state_dict(_load_state(path, name))
            if hasattr(obj, "to"):
                obj.to(accelerator.device)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, KeyError, SafetensorError) as exc:
        if is_out_of_memory(exc):
            raise
        reason = str(exc).strip().splitlines()[0][:240] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot be loaded ({reason})") from exc
