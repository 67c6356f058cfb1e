"""``jointportrait reproduce``: the paper's experiments in miniature (see :mod:`jointportrait.reproduce`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.options import add_face_model_argument, parse_device
from jointportrait.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder; running again on it continues an interrupted run")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per method (default 3)")
    parser.add_argument("--quick", action="store_true", help="the same protocol at toy size (seconds per network)")
    add_face_model_argument(parser)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (evaluation; training uses the GPU when "
                                                        "there is one)")


def run(args: argparse.Namespace) -> int:
    from jointportrait.reproduce.protocol import ProtocolConfig, quick_config
    from jointportrait.reproduce.report import markdown_differences, markdown_tables
    from jointportrait.reproduce.runner import run_protocol

    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {args.seeds}")
    parse_device(args.device)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a folder")
    cfg = quick_config(args.seeds, args.device) if args.quick else ProtocolConfig(seeds=args.seeds,
                                                                                   device=args.device)
    results = run_protocol(args.out, cfg, say=lambda msg: print(msg, flush=True), face_model=args.face_model)
    print()
    print(markdown_tables(results["summary"], results["trivial"], cfg.seeds))
    print(markdown_differences(results["differences"]))
    print(f"tables: {args.out / 'tables.md'}; every method and seed: {args.out / 'results.json'}; "
          f"figures: {args.out / 'figures'}")
    return 0
