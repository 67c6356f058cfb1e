"""``estimate-depth`` on a folder: photos per second with ``--batch-size`` against one photo at a time.

A folder of 64 random 256 x 256 photos and a saved 18-channel joint model of the ``small`` sizes of
``bench_depth_estimation`` (native 256 px); the command runs in this process (``jointportrait.cli.main``)
with everything it does per photo (reading, the model, the depth PNGs, the normals). Batch sizes 1, 8
and 16 run interleaved, one of each per round; medians over rounds. On a CPU the time is this
process's CPU time with one torch thread (the machine is shared: wall time would count waiting for
a core).

    python benchmarks/bench_depth_throughput.py [--rounds 3] [--steps 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_depth_estimation import build
from benchmarks.profiling import interleaved, median_spread, ratio_stats
from benchmarks.report import update_section
from jointportrait.cli.main import main as cli

PHOTOS = 64
SIZE = 256
BATCHES = (1, 8, 16)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv if argv is not None else [])
    if args.device == "cpu":
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ours, _, _ = build("small", "cpu")
        ours.save_pretrained(root / "model")
        photos = root / "photos"
        photos.mkdir()
        rng = np.random.default_rng(0)
        for i in range(PHOTOS):
            PIL.Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(photos / f"{i:03d}.png")

        def run(batch: int):
            def go() -> None:
                code = cli(["estimate-depth", "--image", str(photos), "--model", str(root / "model"),
                            "--out", str(root / f"out{batch}"), "--overwrite", "--steps", str(args.steps),
                            "--device", args.device, "--batch-size", str(batch)])
                assert code == 0
            return go

        t = interleaved({b: run(b) for b in BATCHES}, args.rounds, args.device)
        outputs = {b: np.stack([np.load(root / f"out{b}" / f"{i:03d}_depth.npy") for i in range(PHOTOS)])
                   for b in BATCHES}
    difference = max(float(np.abs(outputs[b] - outputs[1]).max()) for b in BATCHES)
    clock = "CPU time, 1 thread" if args.device == "cpu" else f"synchronised wall time, {args.device}"
    rows = []
    for b in BATCHES:
        med, spread = median_spread(t[b])
        speed = ratio_stats(t[1], t[b])
        rows.append(f"| {b} | {med:.1f} ± {med * spread:.1f} | {PHOTOS / med:.2f} | **{speed[0]:.2f} ± "
                    f"{speed[0] * speed[1]:.2f}** |")
    text = "\n".join([
        f"## `estimate-depth` on a folder of {PHOTOS} photos at {SIZE} px: batches against one at a time",
        "",
        f"`python benchmarks/bench_depth_throughput.py --steps {args.steps}`; the `small` 18-channel model "
        f"(native {SIZE} px), {args.steps} step(s), no ensemble, device {args.device}; the whole command "
        f"(reading, model, writing depth and normals); {clock}; medians of {args.rounds} interleaved rounds.",
        "",
        "| --batch-size | folder (s) | photos / s | speed-up vs 1 |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Largest difference of a batched depth map from the one-at-a-time map: {difference:.1e} (round-off).",
    ])
    print(text)
    update_section(f"depth_throughput_{args.device.split(':')[0]}", text)


if __name__ == "__main__":
    main(sys.argv[1:])
