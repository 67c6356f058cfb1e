"""``jointportrait demo``: the end-to-end showcase on an embedded default.

For now: build a tiny random joint model and sample RGB + depth from an
embedded reference, which exercises every part of the sampling path. The full
demo (synthetic data, training, evaluation, HTML report) replaces this.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from jointportrait.cli.common import save_depth_outputs
    from jointportrait.io import save_image
    from jointportrait.loading import create_tiny_joint_model

    args.out.mkdir(parents=True, exist_ok=True)
    pipe = create_tiny_joint_model(args.out / "tiny_model", seed=args.seed)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    reference = np.stack([xx, yy, 1.0 - xx * yy], axis=-1)  # a smooth embedded reference
    reference = torch.from_numpy(reference.transpose(2, 0, 1)[None].astype(np.float32))  # (1, 3, 64, 64)
    result = pipe(reference, num_inference_steps=10, height=64, width=64,
                  generator=torch.Generator().manual_seed(args.seed))
    save_image(args.out / "sample.png", result.images[0], overwrite=True)
    save_depth_outputs(args.out, "sample", result.depths[0], overwrite=True)
    print(f"wrote a tiny joint model and one RGB + depth sample to {args.out}")
    return 0
