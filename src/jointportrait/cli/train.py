"""``jointportrait train``: stage 1 (joint learning) and stage 2 (inpainting fine-tune) (paper Sec. 5.1).

Single process: ``jointportrait train --config configs/train/stage1_joint.yaml --output-dir runs/s1``.
Several GPUs or machines: the same arguments after ``accelerate launch`` (docs/TRAINING.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.errors import InputError, MissingPathError, OutputExistsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="YAML config (configs/train/*.yaml); with --resume the run's frozen config.yaml is used")
    parser.add_argument("--output-dir", type=Path, required=True, metavar="DIR", help="run folder")
    parser.add_argument("--resume", metavar="latest|strict|CHECKPOINT_DIR",
                        help="continue the run in DIR: latest = from its newest intact checkpoint (a corrupt newer "
                             "one is named and skipped), strict = from its newest checkpoint or not at all, or "
                             "from a given checkpoint folder; every file is checked against its SHA-256 first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config key, e.g. --set train.max_steps=100 (repeatable)")


def resolve_run(args: argparse.Namespace):
    """The configuration and checkpoint of a new or resumed run (validated, nothing written yet)."""
    from jointportrait.training.checkpoint import resolve_resume
    from jointportrait.training.config import load_config
    from jointportrait.training.run_lock import folder_is_empty

    out: Path = args.output_dir
    if args.resume is not None:
        frozen = out / "config.yaml"
        if not frozen.is_file():
            raise InputError(f"{out}: no config.yaml; --resume needs a run folder written by jointportrait train")
        cfg = load_config(frozen, args.overrides)
        if args.config is not None and load_config(args.config, args.overrides) != cfg:
            raise InputError(f"--config {args.config} differs from the frozen {frozen}; resume uses the frozen "
                             "config (drop --config, change keys with --set)")
        return cfg, resolve_resume(out, args.resume)
    if args.config is None:
        raise InputError("--config is required for a new run")
    cfg = load_config(args.config, args.overrides)
    if out.exists() and (not out.is_dir() or not folder_is_empty(out)):
        raise OutputExistsError(f"{out}: not an empty folder; pass --resume latest to continue that run")
    return cfg, None


def run(args: argparse.Namespace) -> int:
    from jointportrait.training.run_lock import run_lock
    from jointportrait.training.trainer import train

    if args.resume is not None and not args.output_dir.is_dir():
        raise MissingPathError(f"{args.output_dir}: no such run folder (--resume continues a run of jointportrait train)")
    if args.resume is None:
        resolve_run(args)  # a bad config or a used folder is refused before the lock creates anything
    with run_lock(args.output_dir):  # and checked again under it: two runs started together cannot both pass
        cfg, checkpoint = resolve_run(args)
        result = train(cfg, args.output_dir, resume_from=checkpoint)
    if result.losses and result.is_main_process:
        print(f"step {result.state.step}: loss {result.losses[-1]:.4f}; model in {result.final_dir}")
    return 0
