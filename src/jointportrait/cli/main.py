"""Entry point of the ``jointportrait`` command (DESIGN.md, "Command line").

Each sub-command lives in its own module under :mod:`jointportrait.cli` and
exposes ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports
(torch, diffusers) happen inside ``run`` so that ``--help`` stays fast.
Every failure becomes one line on stderr and a non-zero exit status
(:mod:`jointportrait.cli.failures`: 2 bad input, 3 out of disk or memory, 130
interrupted, 1 unexpected); ``--debug`` prints the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from jointportrait.cli.failures import close_progress_bars, describe
from jointportrait.io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels

# name -> (module under jointportrait.cli, one-line help). Explicit registry: a
# new command is one line here plus its module.
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("create", "write a joint model folder from a local SD 1.5 model, or a tiny random one"),
    "generate": ("generate", "reference image -> RGB + depth samples"),
    "estimate-depth": ("estimate_depth", "photo -> relative depth, colour map and normals"),
    "depth-to-image": ("depth_to_image", "depth map + identity reference -> portraits"),
    "edit": ("edit", "regenerate a photo inside a mask to follow an edited depth"),
    "animate": ("animate", "reference image + driving depth / video / track -> a video of RGB and depth"),
    "relight": ("relight", "photo + depth -> normals, diffuse shading and a relit photo"),
    "export": ("export", "photo + depth -> coloured point cloud or mesh (PLY, OBJ, GLB)"),
    "evaluate": ("evaluate", "depth / image / video metrics of the paper's Tables 1-3 over folders"),
    "train": ("train", "train stage 1 (joint learning), 2 (inpainting fine-tune) or 3 (motion) on accelerate"),
    "track": ("track", "video -> 68-point landmarks (detected or given) -> tracked face model, pseudo "
                       "ground-truth depth, manifest"),
    "landmarks": ("landmarks", "photo(s) or video -> detected faces' 68-point landmarks (.npy / .json)"),
    "demo": ("demo", "the end-to-end showcase on an embedded default"),
    "reproduce": ("reproduce", "the paper's experiments in miniature: every method and ablation, seeds, tables"),
    "render-depth": ("render_depth", "meshes + cameras -> depth maps, previews and coverage masks"),
    "synth": ("synth", "synthetic studio images or clips with exact depth, masks and parameters"),
    "serve": ("serve", "a web page for every application (needs the [serve] extra)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jointportrait",
        description="Joint depth and appearance diffusion for portrait images.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of a failure (also JOINTPORTRAIT_DEBUG=1)")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help="refuse input images of more than N pixels, before decoding them (default "
                             f"{DEFAULT_MAX_IMAGE_PIXELS:,}, or JOINTPORTRAIT_MAX_PIXELS)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"jointportrait.cli.{module_name}")
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    debug = args.debug or os.environ.get("JOINTPORTRAIT_DEBUG", "") not in ("", "0")
    try:
        set_max_image_pixels(args.max_pixels)  # also resets what an earlier main() in this process set
        return int(args._module.run(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        close_progress_bars()
        if debug:
            traceback.print_exc()
        failure = describe(exc, getattr(args, "out", None) or getattr(args, "output_dir", None))
        print(f"error: {failure.message}", file=sys.stderr)
        return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
