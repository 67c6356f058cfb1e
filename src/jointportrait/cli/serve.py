"""``jointportrait serve``: a web page for every application, on this machine (docs/SERVE.md).

Needs the optional ``[serve]`` extra (Gradio). Listens on 127.0.0.1 unless ``--host``
says otherwise; stops on Ctrl-C or SIGTERM and then removes every file it wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

from jointportrait.cli.options import DTYPES
from jointportrait.errors import InputError, JointPortraitError

MISSING_EXTRA = ("jointportrait serve needs the optional [serve] extra (Gradio): "
                 "pip install -e '.[serve]' (scripts/setup.sh installs it)")


@contextlib.contextmanager
def sigterm_sets(event: threading.Event):
    """Within the block, SIGTERM sets ``event`` instead of ending the process (the handler is restored after)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path,
                     help="joint model folder (jointportrait create / train); a video model folder (with "
                          "motion_adapter/) adds the animation tab")
    src.add_argument("--tiny", action="store_true",
                     help="a tiny random model built in memory, to try the page (its outputs are noise)")
    parser.add_argument("--video", action="store_true",
                        help="with --tiny: a tiny random video model (motion modules), for the animation tab")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only; 0.0.0.0 lets anyone who can reach "
                             "this machine use the model and upload files: docs/SERVE.md)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="model weights dtype")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted upload, in MB")
    parser.add_argument("--max-pixels", type=int, default=25_000_000,
                        help="largest accepted image, in pixels (checked from the header, before decoding)")
    parser.add_argument("--max-queue", type=int, default=16, help="jobs that may wait; more are refused")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    if args.video and not args.tiny:
        raise InputError("--video goes with --tiny (a model folder with motion_adapter/ is a video model already)")
    if args.max_queue < 1:
        raise InputError(f"--max-queue must be >= 1, got {args.max_queue}")
    if not args.max_upload_mb > 0:
        raise InputError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise JointPortraitError(MISSING_EXTRA) from None
    from diffusers.utils import logging as diffusers_logging

    from jointportrait.cli.options import parse_device, torch_dtype
    from jointportrait.serve.app import launch
    from jointportrait.serve.context import ServeContext, load_serve_pipelines
    from jointportrait.serve.limits import UploadLimits
    from jointportrait.serve.workspace import Workspace

    limits = UploadLimits(max_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels)
    device = parse_device(args.device)
    diffusers_logging.disable_progress_bar()  # no loading bars: the command's own lines stay readable
    stop = threading.Event()
    # SIGTERM only sets `stop` from before the first temporary file to the end, so it always cleans up
    with sigterm_sets(stop), Workspace() as workspace:
        pipe, video_pipe = load_serve_pipelines(args.model, args.tiny, device, torch_dtype(args.dtype),
                                                video=args.video)
        # the page names the model folder, not its path on the server
        name = f"tiny random {'video ' if args.video else ''}model" if args.tiny else args.model.resolve().name
        ctx = ServeContext(pipe, workspace, limits, tiny=args.tiny, model_name=name, video_pipe=video_pipe)
        try:
            demo = launch(ctx, args.host, args.port, args.max_queue)
        except OSError as exc:
            raise JointPortraitError(f"cannot listen on {args.host}:{args.port} ({str(exc).splitlines()[0]})") from None
        print(f"serving http://{args.host}:{args.port} ({ctx.describe()}; Ctrl-C to stop)", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {args.host}: anyone who can reach this machine on port {args.port} can "
                  "run the model and upload files; there is no login (docs/SERVE.md)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    print("stopped; temporary files removed", flush=True)
    return 0
