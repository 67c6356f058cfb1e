"""TEST FIXTURE: ``jointportrait train`` whose checkpoint save pauses inside the save, for a kill -9 there.

When the save of ``checkpoint-<PAUSE_STEP>`` has written every file but not yet
its ``SHA256SUMS`` (so it is still ``checkpoint-<step>.tmp``), this touches
``<output-dir>.saving`` and sleeps, giving the test a window in which to kill the
process. Usage: ``python save_pause_train.py PAUSE_STEP <jointportrait train arguments>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from jointportrait.cli.main import main
from jointportrait.training import checkpoint


def _pausing(real, pause_step: int, marker: Path):
    def write_checksums(folder):
        if Path(folder).name == f"checkpoint-{pause_step}.tmp":
            marker.touch()
            time.sleep(600)  # the test kills the process here
        return real(folder)

    return write_checksums


if __name__ == "__main__":
    step, argv = int(sys.argv[1]), sys.argv[2:]
    out = Path(argv[argv.index("--output-dir") + 1])
    checkpoint.write_checksums = _pausing(checkpoint.write_checksums, step, out.with_suffix(".saving"))
    sys.exit(main(argv))
