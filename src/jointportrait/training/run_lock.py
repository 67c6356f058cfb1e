"""One process per run folder: an exclusive lock held for the whole of a training run.

``jointportrait train`` checks that a new run's folder is empty, but two
processes started at the same moment would both pass that check and then
overwrite each other's checkpoints. :func:`run_lock` takes an exclusive
``flock`` on ``<run>/.jointportrait.lock`` (non-blocking: the second process
fails at once with :class:`~jointportrait.errors.RunLockedError` naming the
holder's pid). The kernel releases the lock when its holder exits, however it
exits (kill -9 included), so a stale lock never blocks a resume. The holder
deletes the file before releasing it, and a new holder checks that the file it
locked is still the one at the path (else it tries again), the usual protocol
for lock files that are removed; a folder the lock created is removed again when
nothing else was written into it (a run refused at once leaves nothing behind).
``LOCK_NAME`` is not counted when a folder is checked for emptiness.

Under ``accelerate launch`` / ``torchrun`` only global rank 0 (``RANK``) takes
the lock; the other ranks are the same run. The lock is re-entrant within a
process (the command line takes it before checking the folder, the trainer
takes it again). It relies on ``fcntl.flock``: POSIX systems; on NFS, Linux
maps it to a byte-range lock that every client sees.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from jointportrait.errors import InputError, RunLockedError

logger = logging.getLogger(__name__)

LOCK_NAME = ".jointportrait.lock"
_held: dict[Path, int] = {}  # resolved run folder -> how many nested run_lock blocks hold it in this process


def is_launch_rank_zero() -> bool:
    """True unless this process is a rank other than 0 of a distributed launch (``RANK`` is set by the launcher)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        pid = path.read_text(encoding="utf-8").strip()
        if pid.isdigit():
            return f"pid {pid}"
    return "pid unknown"


@contextlib.contextmanager
def run_lock(output_dir: str | os.PathLike, enabled: bool | None = None) -> Iterator[None]:
    """Hold the run folder's lock inside this block (creating the folder); ``enabled`` defaults to rank 0."""
    if enabled is None:
        enabled = is_launch_rank_zero()
    output_dir = Path(output_dir)
    if not enabled:
        yield
        return
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"{output_dir}: exists and is not a folder")
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    key = output_dir.resolve()
    if key in _held:  # this process holds it already (re-entrant)
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    path = output_dir / LOCK_NAME
    fd = _acquire(path, output_dir)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[key] = 1
        logger.debug("locked %s", path)
        yield
    finally:
        _held.pop(key, None)
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it: a waiting process sees the inode change and retries
            if created and not any(output_dir.iterdir()):
                output_dir.rmdir()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(path: Path, output_dir: Path, attempts: int = 5) -> int:
    """An fd holding the exclusive lock on ``path``, which is still the file at ``path`` once locked."""
    for _ in range(attempts):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"{output_dir}: in use by another training process ({_holder(path)}); "
                                 "wait for it to finish or stop it first") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file between our open and our lock: again
    raise RunLockedError(f"{output_dir}: could not lock {path} (another process keeps replacing it)")


def folder_is_empty(path: str | os.PathLike) -> bool:
    """True when ``path`` holds nothing but (possibly) the lock file."""
    return not any(p.name != LOCK_NAME for p in Path(path).iterdir())
