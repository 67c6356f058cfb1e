"""Errors that the command line turns into one line and a non-zero exit.

Library code raises :class:`JointPortraitError` (or a subclass) for anything a
user can fix: a missing path, a malformed file, an argument out of range. The
CLI catches it, prints ``error: <message>`` and exits with status 2. Every
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class JointPortraitError(Exception):
    """A problem with the user's input, reported as one line."""


class InputError(JointPortraitError, ValueError):
    """An input file or argument is invalid (names the file or argument)."""


class MissingPathError(JointPortraitError, FileNotFoundError):
    """A path the user gave does not exist or lacks what was expected there."""


class OutputExistsError(JointPortraitError, FileExistsError):
    """An output would overwrite an existing file and ``--overwrite`` was not given."""


class MissingDependencyError(JointPortraitError, ImportError):
    """An optional dependency (a ``pip install jointportrait[extra]``) is not installed; names the extra."""
