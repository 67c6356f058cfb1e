"""One place that turns a failure into one line and an exit status, for every command.

:func:`describe` maps an exception to a :class:`Failure`: the project's own
errors (:mod:`jointportrait.errors`) carry their message and status; the known
failures of the libraries underneath (a full disk, out of memory, an unreadable
or corrupt file, broken JSON, a refused pickle) get a line that names the file
where the exception knows it, and otherwise the output folder of the command.
Anything else is unexpected (a bug): one line too, status 1, with the advice to
rerun with ``--debug``, which prints the traceback of any failure.

Nothing heavy is imported here (``--help`` stays fast): foreign exceptions are
recognised by their class name and message.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from jointportrait.errors import (
    EXIT_INPUT,
    EXIT_RESOURCE,
    JointPortraitError,
    ResourceError,
    TrainingStopped,
    exception_chain,
    is_disk_full,
    is_out_of_memory,
)

EXIT_UNEXPECTED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

_OOM_HINT = ("use smaller or fewer inputs (--processing-resolution, --ensemble, --num-samples, "
             "train.batch_size) or --dtype bfloat16")


@dataclass(frozen=True)
class Failure:
    """What the command line prints (after ``error: ``) and the exit status; ``known`` is False for a bug."""

    message: str
    exit_code: int
    known: bool = True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _known_foreign(exc: BaseException, output: object) -> Failure | None:
    """The known failures of the libraries underneath (checked through the whole exception chain)."""
    if is_disk_full(exc):
        files = [item.filename for item in exception_chain(exc) if isinstance(item, OSError) and item.filename]
        where = f"{files[0]}: no space left on device" if files else "no space left on device"
        if not files and output:
            where += f" while writing to {output}"
        return Failure(f"{where}; free some space and run the command again", EXIT_RESOURCE)
    if output and is_disk_full(exc, output):  # a write failure that does not say why, on a full filesystem
        return Failure(f"no space left on device while writing to {output} ({type(exc).__name__}: "
                       f"{_first_line(exc)[:160]}); free some space and run the command again", EXIT_RESOURCE)
    if is_out_of_memory(exc):
        return Failure(f"out of memory ({_first_line(exc)[:160]}); {_OOM_HINT}", EXIT_RESOURCE)
    for item in exception_chain(exc):
        names = _class_names(item)
        if "DecompressionBombError" in names:
            return Failure(f"image refused before decoding: {_first_line(item)}", EXIT_INPUT)
        if isinstance(item, json.JSONDecodeError):
            return Failure(f"not valid JSON ({item.msg} at line {item.lineno} column {item.colno})", EXIT_INPUT)
        if "SafetensorError" in names:
            return Failure(f"a safetensors file is truncated or corrupt ({_first_line(item)})", EXIT_INPUT)
        if "UnpicklingError" in names:
            reason = _first_line(item)[:200]
            return Failure(f"refused to unpickle a file that holds more than plain tensors ({reason})", EXIT_INPUT)
        if isinstance(item, OSError) and item.filename and item.strerror:
            return Failure(f"{item.filename}: {item.strerror.lower()}", EXIT_INPUT)
    return None


def describe(exc: BaseException, output: object = None) -> Failure:
    """The one-line report of ``exc``; ``output`` (the command's ``--out``) is named when no file is known."""
    if isinstance(exc, (JointPortraitError, ResourceError, TrainingStopped)):
        return Failure(_one_line(exc), exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", EXIT_INTERRUPTED)
    known = _known_foreign(exc, output)
    if known is not None:
        return known
    return Failure(f"unexpected {type(exc).__name__}: {_first_line(exc)[:300]} (rerun with --debug for the "
                   "traceback; please report it)", EXIT_UNEXPECTED, known=False)


def close_progress_bars() -> None:
    """Close the tqdm bars a failure left open, so that the error starts on a line of its own."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.close()
