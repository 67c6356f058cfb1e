"""``jointportrait demo``: the method end to end on an embedded default (see :mod:`jointportrait.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.options import add_face_model_argument, parse_device
from jointportrait.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="train to a time budget in minutes, shared by the stages, instead of the default fixed "
                             "steps per stage (8 to 21 minutes on 2 cores, by the CPU)")
    parser.add_argument("--steps", type=int, default=None, help="fixed optimizer steps per stage instead of a time budget (repeatable runs)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (multiple of 8; the base's is 64)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size of every stage")
    parser.add_argument("--subjects", type=int, default=160, help="synthetic subjects (1/8 held out for the test)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    add_face_model_argument(parser)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds (tiny data, 2 steps per stage)")


def run(args: argparse.Namespace) -> int:
    from jointportrait.demo import DemoConfig, run_demo
    from jointportrait.demo.report import markdown_tables

    if args.minutes is not None and args.minutes <= 0:
        raise InputError(f"--minutes must be positive, got {args.minutes}")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
    if args.size <= 0 or args.size % 8:
        raise InputError(f"--size must be a positive multiple of 8, got {args.size}")
    if args.subjects < 8:
        raise InputError(f"--subjects must be >= 8 (train, validation and test subjects), got {args.subjects}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    parse_device(args.device)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a folder")
    cfg = DemoConfig(out=args.out, minutes=args.minutes, steps=args.steps, device=args.device, seed=args.seed,
                     face_model=args.face_model, quick=args.quick, size=args.size, batch_size=args.batch_size,
                     subjects=args.subjects)
    result = run_demo(cfg, say=lambda msg: print(msg, flush=True))
    print()
    print(markdown_tables(result.metrics))
    print(f"report: {result.out / 'index.html'} (numbers in {result.out / 'metrics.json'})")
    return 0
