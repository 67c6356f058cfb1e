"""The web demo's temporary files: one private folder per server, one fresh sub-folder per call.

Layout under ``root`` (created with mode 0700 in the system temp folder):

- ``gradio/``: Gradio's upload and result cache (``GRADIO_TEMP_DIR``); Gradio names each
  result by a hash of its content, and its ``delete_cache`` removes old files;
- ``calls/<random>/``: what one call writes (depth files, meshes) under fixed names,
  before Gradio copies it into its cache. Nothing a user sends becomes part of a path.

Call folders older than ``max_age_s`` are removed at the start of every new call, and
:meth:`Workspace.close` removes the whole root when the server stops.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class Workspace:
    """Server-owned temporary folders (see the module docstring)."""

    def __init__(self, max_age_s: float = 600.0):
        # in the system temp folder: Gradio copies results from there into its cache without
        # serving the folder itself (an `allowed_paths` entry would make it downloadable)
        self.root = Path(tempfile.mkdtemp(prefix="jointportrait-serve-"))
        self.gradio_dir = self.root / "gradio"
        self.calls_dir = self.root / "calls"
        self.gradio_dir.mkdir(mode=0o700)
        self.calls_dir.mkdir(mode=0o700)
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()

    def call_dir(self) -> Path:
        """A new empty folder for one call (after removing call folders older than ``max_age_s``)."""
        self.prune()
        return Path(tempfile.mkdtemp(dir=self.calls_dir))

    def prune(self, now: float | None = None) -> int:
        """Remove call folders last modified more than ``max_age_s`` ago; return how many."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            for folder in self.calls_dir.iterdir():
                try:
                    if now - folder.stat().st_mtime > self.max_age_s:
                        shutil.rmtree(folder)
                        removed += 1
                except FileNotFoundError:
                    continue
        if removed:
            logger.info("removed %d old call folders", removed)
        return removed

    def close(self) -> None:
        """Remove every file the server wrote (uploads, results, call folders)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
