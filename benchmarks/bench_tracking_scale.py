"""Face tracking at dataset scale: frames per second per core of ``jointportrait track --clips`` at 640 x 360,
one worker against two, and the projected wall time of the paper's 3 hours of wild video (paper Sec. 5.1:
about 270,000 frames at 25 fps) on 1 and on 16 machines.

The clips are made by the synthetic video generator (the packaged ICT face model) at 360 x 360 and padded to
640 x 360 with their border colour (the principal point stays centred), with the projected landmark vertices
+ 1.5 px noise as ``--landmarks``, so the figure is the tracker's, not the detector's. Every configuration
runs the whole command (read the frames, fit with the default tracker settings, render, write the clip, its
done marker and the merged manifest) on the same folder of clips, one after the other in this process;
wall time includes starting the worker processes.

Run: ``python benchmarks/run.py tracking_scale`` (``CLIPS`` x ``FRAMES`` frames; a few minutes per
configuration on one core); ``python benchmarks/bench_tracking_scale.py --device cuda`` adds a row with one
worker fitting on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import update_section
from jointportrait.cli.main import main as cli
from jointportrait.cli.track_dataset import usable_cores
from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.face_models import load_face_model
from jointportrait.tracking.evaluation import load_synthetic_clip

CLIPS, FRAMES, HEIGHT, WIDTH, NOISE_PX, SEED = 4, 8, 360, 640, 1.5, 0
DATASET_FRAMES = 270_000  # the paper's 3 hours of wild video at 25 fps
MACHINES = 16
CORES_PER_MACHINE = 32  # assumed for the projection: a common dual-socket CPU node of a cluster
CONFIGS = ((1, 1), (2, 1))  # (workers, threads per worker)


def write_clips(root: Path) -> Path:
    """``CLIPS`` clips of ``FRAMES`` frames at ``WIDTH`` x ``HEIGHT`` as frame folders, landmarks beside them."""
    model = load_face_model()
    synth = root / "synth"
    write_dataset(synth, model, SynthConfig(subjects=CLIPS, frames_per_subject=FRAMES, size=HEIGHT, video=True,
                                            clip_length=FRAMES, seed=SEED, val_fraction=0.0, test_fraction=0.0))
    names = sorted({json.loads(line)["clip"] for line in (synth / "manifest.jsonl").read_text().splitlines()})
    pad = (WIDTH - HEIGHT) // 2
    for k, name in enumerate(names):
        clip = load_synthetic_clip(synth, model, clip=name, noise_px=NOISE_PX, seed=SEED + k)
        frames = np.pad(clip.frames, ((0, 0), (0, 0), (pad, WIDTH - HEIGHT - pad), (0, 0)), mode="edge")
        folder = root / "clips" / f"clip{k:02d}"
        folder.mkdir(parents=True)
        for f, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{f:04d}.png")
        (root / "landmarks").mkdir(exist_ok=True)
        np.save(root / "landmarks" / f"clip{k:02d}.npy", clip.landmarks + np.array([pad, 0], np.float32))
    return root


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the worker processes)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_config(root: Path, workers: int, threads: int, device: str = "cpu") -> dict:
    out = root / f"out_w{workers}_t{threads}_{device.replace(':', '')}"
    start, cpu_start = time.perf_counter(), cpu_seconds()
    status = cli(["track", "--clips", str(root / "clips"), "--landmarks", str(root / "landmarks"), "--out", str(out),
                  "--workers", str(workers), "--threads", str(threads), "--device", device])
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    if status != 0:
        raise RuntimeError(f"track --clips with {workers} worker(s) x {threads} thread(s) failed ({status})")
    done = [json.loads(p.read_text()) for p in sorted((out / "clips").glob("*/done.json"))]
    frames = sum(d["frames"] for d in done)
    fit = sum(d["seconds"] for d in done)
    cores = workers * threads
    return {"device": device, "workers": workers, "threads": threads, "cores": cores, "frames": frames, "wall": wall,
            "fps": frames / wall, "fps_core": frames / wall / cores, "clip_seconds": fit / frames,
            "fps_cpu": frames / cpu}


def hours(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 3 * 86400 else f"{seconds / 86400:.1f} days"


def main(device: str = "cpu") -> None:
    """The CPU configurations; with ``device`` (e.g. ``cuda``) one more row: one worker fitting there."""
    load_face_model()  # the parent's copy is loaded once, outside the timings (workers load their own)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = write_clips(Path(tmp))
        rows = [run_config(root, w, t) for w, t in CONFIGS]
        extra = [run_config(root, 1, 1, device)] if device != "cpu" else []
    load = (load + os.getloadavg()[0]) / 2
    one, two = rows
    rows += extra
    for r in rows:
        r["label"] = f"{r['workers']} x {r['threads']}" + ("" if r["device"] == "cpu" else f" on {r['device']}")
        print(f"{r['label']}: {r['frames']} frames in {r['wall']:.1f} s, {r['fps']:.3f} frames/s, "
              f"{r['fps_cpu']:.3f} frames per CPU-second")
    wall_scaling, cpu_ratio = two["fps"] / one["fps"], two["fps_cpu"] / one["fps_cpu"]
    machine_fps = two["fps_cpu"] * CORES_PER_MACHINE  # every core busy with one worker of one thread
    table = "\n".join(
        f"| {r['label']} | {r['frames']} | {r['wall']:.1f} | {r['fps']:.3f} | "
        f"{r['fps'] / one['fps']:.2f} | {r['frames'] / r['fps_cpu']:.1f} | {r['fps_cpu']:.3f} | "
        f"{r['fps_cpu'] / one['fps_cpu']:.2f} | {r['clip_seconds']:.2f} |" for r in rows)
    gpu_note = ("The GPU row fits each clip's frames in one batch on the GPU (CPU-s there: host time only)."
                if extra else "The GPU path (`python benchmarks/bench_tracking_scale.py --device cuda` adds its row) "
                "has not been measured here: no GPU was available.")
    update_section("tracking_scale", f"""## Face tracking at dataset scale (`jointportrait track --clips`)

`python benchmarks/run.py tracking_scale`: {CLIPS} clips x {FRAMES} frames of {WIDTH} x {HEIGHT} (synthetic,
ICT model, landmarks given), the default tracker (landmark stages + photometric stage at 256 px), the whole
command per configuration (read, fit, render, write, merge) on the same clips, one after the other in one run.
Wall time includes starting the worker processes (spawned: Python, torch and the face model load in each).
CPU time is user + system time of the command and its worker processes: frames per CPU-second is the
throughput of one core that the tracker has to itself. This machine has {usable_cores()} usable cores shared
with other jobs (load average {load:.1f} during the run), so its wall-clock scaling measures the competition
for the cores more than the tracker; the CPU-time columns do not depend on that.

| workers x threads | frames | wall (s) | frames / s | wall speed-up | CPU s | frames / CPU-s (per core) | per core vs 1 x 1 | fit s / frame (per clip, wall) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{table}

Two workers: {wall_scaling:.2f}x the wall-clock frames per second of one here (2.00 = perfect scaling), at
{cpu_ratio:.2f}x the frames per CPU-second (1.00 = the second process costs no extra CPU time per frame).

**Projection** for the paper's {DATASET_FRAMES:,} frames (3 hours at 25 fps) on dedicated {CORES_PER_MACHINE}-core
machines (an assumption: a common cluster node) running `--workers {CORES_PER_MACHINE} --threads 1`, each core
at the 2 x 1 row's frames per CPU-second ({two['fps_cpu']:.3f}), i.e. {machine_fps:.2f} frames / s per machine:

| machines | frames / s | wall time for {DATASET_FRAMES:,} frames |
| --- | --- | --- |
| 1 | {machine_fps:.2f} | {hours(DATASET_FRAMES / machine_fps)} |
| {MACHINES} (`--shard i/{MACHINES}`) | {machine_fps * MACHINES:.2f} | {hours(DATASET_FRAMES / machine_fps / MACHINES)} |

One core alone: {hours(DATASET_FRAMES / one['fps_cpu'])}. Shards are balanced by clip count (their sizes differ
by at most one clip), so with clips of unequal length the slowest shard sets the wall time. Memory bandwidth
shared by {CORES_PER_MACHINE} workers is not measured here. {gpu_note}
""")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="also fit with one worker on this device (e.g. cuda)")
    main(parser.parse_args().device)
