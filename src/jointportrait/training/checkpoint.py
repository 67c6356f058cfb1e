"""Atomic training checkpoints: save, find the latest, keep the last K (supplementary 7.2).

A checkpoint is ``DIR/checkpoint-<step>/``, written by ``accelerator.save_state``
(model, optimizer, LR scheduler, RNG states of every process, and the
registered objects: :class:`TrainState` and the EMA). It is first written to
``checkpoint-<step>.tmp``, every file is fsynced, and only then is the folder
renamed; a rename is atomic, so a folder named ``checkpoint-<step>`` is always
complete and a kill during a save leaves only a ``.tmp`` folder, which the next
run deletes. "latest" is the complete checkpoint with the highest step.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from jointportrait.errors import MissingPathError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint-(\d+)$")


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


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints ``(step, path)`` sorted by step."""
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
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1][1] if checkpoints else None


def resolve_resume(output_dir: str | Path, resume: str) -> Path:
    """``"latest"`` -> the newest complete checkpoint of ``output_dir``; otherwise a checkpoint folder."""
    if resume == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise MissingPathError(f"{output_dir}: no complete checkpoint to resume from (--resume latest)")
        return path
    path = Path(resume)
    if not path.is_dir() or not _NAME.match(path.name):
        raise MissingPathError(f"{resume}: not a checkpoint folder (expected .../checkpoint-<step>)")
    return path


def remove_incomplete(output_dir: str | Path) -> None:
    """Delete ``checkpoint-*.tmp`` folders left by a run killed while saving."""
    for path in Path(output_dir).glob("checkpoint-*.tmp"):
        logger.warning("removing incomplete checkpoint %s", path)
        shutil.rmtree(path, ignore_errors=True)


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


def save_checkpoint(accelerator, output_dir: str | Path, step: int, keep_last: int) -> Path:
    """Write ``checkpoint-<step>`` atomically (all processes call this) and prune to the last ``keep_last``."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _fsync_tree(tmp)
        if final.exists():  # re-saving the same step (e.g. a resumed run): the old copy goes only now
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(output_dir)
        for _, old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("saved %s", final)
    accelerator.wait_for_everyone()
    return final
