"""Writes benchmark figures into BENCHMARKS.md, one section per benchmark.

Each benchmark owns a section between ``<!-- section:NAME -->`` markers; running
one benchmark replaces only its own section, so figures of the others stay.
Figures are ratios against a baseline measured in the same run (CPU timings
are noisy; absolute times are recorded for context only).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nRun all with `python benchmarks/run.py`, or one with `python benchmarks/bench_NAME.py`.\n"


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {gpu}, "
            f"torch {torch.__version__}, {load()}")


def load() -> str:
    """The machine's load when a figure is written: other processes share its cores (ratios stay side by side)."""
    one, _, fifteen = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {fifteen:.1f} (15 min) on {os.cpu_count()} cores"


def timeit(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def update_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``markdown``."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    text = path.read_text() if path.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    block = f"{start}\n{markdown.strip()}\n\n_Measured {stamp} on {machine()}._\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
