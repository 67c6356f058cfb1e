"""Runs every ``benchmarks/bench_*.py`` (each has ``main()``) and updates BENCHMARKS.md."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    modules = sorted(p.stem for p in ROOT.glob("bench_*.py"))
    if names:
        unknown = [n for n in names if f"bench_{n}" not in modules]
        if unknown:
            print(f"error: unknown benchmark(s) {unknown}; available: {[m[6:] for m in modules]}", file=sys.stderr)
            return 2
        modules = [f"bench_{n}" for n in names]
    for name in modules:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    sys.exit(main(sys.argv[1:]))
