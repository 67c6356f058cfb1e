"""Errors that the command line turns into one line and a non-zero exit.

Library code raises :class:`JointPortraitError` (or a subclass) for anything a
user can fix: a missing path, a malformed file, an argument out of range. The
CLI catches it, prints ``error: <message>`` and exits with status 2. A
:class:`ResourceError` says the machine ran out of something (disk space,
memory): no input is at fault, so a batch stops there; its status is 3.
:mod:`jointportrait.cli.failures` maps the known failures of other libraries
(a full disk, out of memory, an unreadable file) to one line too; anything else
is reported as unexpected (status 1), with its traceback under ``--debug``.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

EXIT_INPUT = 2  # the user can fix the input or the arguments
EXIT_RESOURCE = 3  # out of disk space or memory


class JointPortraitError(Exception):
    """A problem with the user's input, reported as one line."""

    exit_code = EXIT_INPUT


class InputError(JointPortraitError, ValueError):
    """An input file or argument is invalid (names the file or argument)."""


class MissingPathError(JointPortraitError, FileNotFoundError):
    """A path the user gave does not exist or lacks what was expected there."""


class OutputExistsError(JointPortraitError, FileExistsError):
    """An output would overwrite an existing file and ``--overwrite`` was not given."""


class MissingDependencyError(JointPortraitError, ImportError):
    """An optional dependency (a ``pip install jointportrait[extra]``) is not installed; names the extra."""


class CheckpointError(JointPortraitError):
    """A training checkpoint is corrupt, incomplete or cannot be loaded (names the checkpoint and file)."""


class RunLockedError(JointPortraitError):
    """Another process is using the run folder (training into it or resuming it)."""


class ResourceError(Exception):
    """The machine ran out of something (disk space, memory); not an input problem, so a batch stops."""

    exit_code = EXIT_RESOURCE


class DiskFullError(ResourceError, OSError):
    """No space left on the device while writing (names the file or folder; nothing partial is left)."""


class TrainingStopped(Exception):
    """Training stopped on a signal (SIGTERM, SIGINT) after writing a checkpoint; exit status 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "storagefull", "os error 28")
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator")


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


NEARLY_FULL_BYTES = 64 * 2**20


def filesystem_nearly_full(path: str | os.PathLike) -> bool:
    """True when the filesystem holding ``path`` (or its nearest existing parent) has < 64 MiB available."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def is_disk_full(exc: BaseException, path: str | os.PathLike | None = None) -> bool:
    """True when ``exc`` (or what caused it) is a write that failed for lack of space or quota.

    Recognised by errno, or by the message for libraries that wrap the OS error
    (safetensors: ``SafetensorError: ... No space left on device (os error 28)``).
    torch's writer reports a short write only as ``unexpected pos``, so with
    ``path`` (where the failed write went) a nearly full filesystem counts too.
    """
    if path is not None and filesystem_nearly_full(path):
        return True
    for item in exception_chain(exc):
        if isinstance(item, DiskFullError) or (isinstance(item, OSError) and item.errno in _DISK_FULL_ERRNOS):
            return True
        if any(text in str(item).lower() for text in _DISK_FULL_TEXT):
            return True
    return False


def is_out_of_memory(exc: BaseException) -> bool:
    """True for ``MemoryError``, torch's ``OutOfMemoryError`` and the allocators' 'out of memory' errors."""
    for item in exception_chain(exc):
        if isinstance(item, MemoryError) or any(c.__name__ == "OutOfMemoryError" for c in type(item).__mro__):
            return True
        if isinstance(item, OSError) and item.errno == errno.ENOMEM:
            return True
        if isinstance(item, RuntimeError) and any(text in str(item).lower() for text in _OOM_TEXT):
            return True
    return False
