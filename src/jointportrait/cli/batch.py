"""Running a command over its input files: one progress bar, bad files reported, the others still done."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from jointportrait.errors import JointPortraitError


def run_batch(files: list[Path], process: Callable[[Path], None], desc: str, out: Path) -> int:
    """Run ``process`` on every file with a progress bar; return the exit status.

    A single input re-raises its error (one line, exit 2 from ``main``). In a batch, a bad
    file is reported on stderr, naming the file, and the others are still processed; the
    status is then 1.
    """
    from tqdm import tqdm

    failures = 0
    for path in tqdm(files, desc=desc, unit="file", disable=len(files) < 2):
        try:
            process(path)
        except JointPortraitError as exc:
            if len(files) == 1:
                raise
            failures += 1
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            tqdm.write(f"error: {message}", file=sys.stderr)  # on a line of its own, not after the bar
    print(f"wrote {len(files) - failures} of {len(files)} inputs to {out}")
    return 1 if failures else 0
