"""Quality against steps of depth estimation: the one-step fine-tuned model (E2E-FT) and the stage-2 model.

On the demo's data (``jointportrait demo``: synthetic studio portraits, split by subject) it

1. trains what is missing of the demo's VAE, stage 1 and stage 2 at fixed step counts (``--base-steps``;
   the default is what the default 15-minute demo reached on an unloaded machine), with the demo's
   own training configurations;
2. fine-tunes stage 2 into the one-step depth model (``model.kind: one_step_depth``, ``--steps``);
3. scores every setting on the held-out test subjects the way the demo does (AbsRel, delta1 and
   RMSE over the skin mask after least-squares scale and shift, the photo as its own reference,
   trailing spacing), with the CPU time per photo (one torch thread);
4. writes the table into BENCHMARKS.md (section ``one_step_depth``).

    python scripts/one_step_depth_table.py --demo demo_out [--steps 300] [--base-steps 350,558,817]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import update_section  # noqa: E402

from jointportrait.applications.depth_estimation import estimate_depth  # noqa: E402
from jointportrait.data.datasets import FrameDataset  # noqa: E402
from jointportrait.data.synth import SynthConfig, write_dataset  # noqa: E402
from jointportrait.demo.evaluate import _pil, mean_depth_prior  # noqa: E402
from jointportrait.demo.runner import DemoConfig, _train_config  # noqa: E402
from jointportrait.evaluation import depth_metrics  # noqa: E402
from jointportrait.face_models import load_face_model  # noqa: E402
from jointportrait.loading import load_joint_pipeline  # noqa: E402
from jointportrait.training.config import config_from_dict  # noqa: E402
from jointportrait.training.trainer import train  # noqa: E402

# (label, model, steps, ensemble)
SETTINGS = (
    ("stage 2", "stage2", 1, 1),
    ("stage 2", "stage2", 4, 1),
    ("stage 2", "stage2", 10, 1),
    ("stage 2, ensemble", "stage2", 1, 5),
    ("stage 2, ensemble", "stage2", 10, 5),
    ("**one-step fine-tuned (E2E-FT)**", "one_step", 1, 1),
)


def train_base(demo: Path, cfg: DemoConfig, steps: tuple[int, int, int]) -> None:
    data = demo / "data"
    if not (data / "manifest.jsonl").exists():
        write_dataset(data, load_face_model(cfg.face_model),
                      SynthConfig(subjects=cfg.subjects, frames_per_subject=cfg.frames_per_subject, size=cfg.size,
                                  seed=cfg.seed, val_fraction=0.0625, test_fraction=0.125))
    runs = demo / "runs"
    for name, kind, n, model in (("vae", "vae", steps[0], {"vae_levels": cfg.vae_levels}),
                                 ("stage1", "joint", steps[1], {"vae": str(runs / "vae"), "in_channels": 8}),
                                 ("stage2", "joint", steps[2], {"init_from": str(runs / "stage1"), "in_channels": 18})):
        if not (runs / name / "final").exists():
            train(config_from_dict(_train_config(kind, data, cfg, n, None, **model)), runs / name)


def fine_tune(demo: Path, cfg: DemoConfig, steps: int, learning_rate: float) -> float:
    """Train the one-step model from the demo's stage 2; its CPU minutes (0 when it exists already)."""
    run = demo / "runs" / "one_step"
    if (run / "final").exists():
        return 0.0
    config = _train_config("one_step_depth", demo / "data", cfg, steps, None,
                           init_from=str(demo / "runs" / "stage2"), in_channels=18)
    config["optim"]["learning_rate"] = learning_rate
    start = time.process_time()
    train(config_from_dict(config), run)
    return (time.process_time() - start) / 60


def evaluate(demo: Path, cfg: DemoConfig) -> tuple[list[dict], int]:
    test = FrameDataset(demo / "data", size=cfg.size, split="test", seed=cfg.seed)
    prior = mean_depth_prior(FrameDataset(demo / "data", size=cfg.size, split="train", seed=cfg.seed))
    pipes = {name: load_joint_pipeline(demo / "runs" / name / "final") for name in ("stage2", "one_step")}
    samples = [test[i] for i in range(len(test))]
    rows = []
    for label, name, steps, ensemble in SETTINGS:
        metrics, seconds = [], 0.0
        for i, s in enumerate(samples):
            photo = _pil(s["image"])
            mask = (s["valid"][0].numpy() > 0.5) & (s["skin_mask"][0].numpy() > 0.5)
            start = time.process_time()
            pred = estimate_depth(pipes[name], photo, num_inference_steps=steps, ensemble_size=ensemble,
                                  generator=torch.Generator().manual_seed(cfg.seed + i)).depth
            seconds += time.process_time() - start
            metrics.append(depth_metrics(pred, s["depth_raw"][0].numpy(), mask, alignment="depth"))
        rows.append({"label": label, "steps": steps, "ensemble": ensemble, "seconds": seconds / len(samples),
                     **{k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}})
    prior_metrics = [depth_metrics(prior, s["depth_raw"][0].numpy(),
                                   (s["valid"][0].numpy() > 0.5) & (s["skin_mask"][0].numpy() > 0.5)) for s in samples]
    rows.append({"label": "trivial: mean training depth", "steps": 0, "ensemble": 0, "seconds": 0.0,
                 **{k: float(np.mean([m[k] for m in prior_metrics])) for k in prior_metrics[0]}})
    return rows, len(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="demo output folder (made if missing)")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps of the one-step model")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--base-steps", default="350,558,817", help="steps of the VAE, stage 1, stage 2")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = DemoConfig(out=args.demo)
    base = tuple(int(v) for v in args.base_steps.split(","))
    train_base(args.demo, cfg, base)
    minutes = fine_tune(args.demo, cfg, args.steps, args.learning_rate)
    rows, n = evaluate(args.demo, cfg)
    one = next(r for r in rows if r["label"].startswith("**one-step"))
    table = [f"| {r['label']} | {r['steps'] or '-'} | {r['ensemble'] or '-'} | {r['abs_rel']:.4f} | "
             f"{r['delta1']:.3f} | {r['rmse']:.2f} | "
             + (f"{r['seconds'] * 1000:.0f} | {r['seconds'] / one['seconds']:.1f} |" if r["seconds"] else "- | - |")
             for r in rows]
    text = "\n".join([
        "## Depth quality against steps: the one-step fine-tuned model (E2E-FT) and stage 2",
        "",
        f"`python scripts/one_step_depth_table.py --demo DIR --steps {args.steps} --base-steps {args.base_steps}`: "
        f"the demo's synthetic studio data ({cfg.subjects} subjects x {cfg.frames_per_subject} frames at "
        f"{cfg.size} px), its VAE, stage 1 and stage 2 trained for {base[0]}, {base[1]} and {base[2]} steps "
        f"(batch {cfg.batch_size}), then stage 2 fine-tuned for {args.steps} steps "
        f"(`model.kind: one_step_depth`, learning rate {args.learning_rate:g}"
        + (f", {minutes:.1f} CPU minutes" if minutes else "") + "). Scored on the "
        f"{n} held-out test photos as the demo scores them (skin mask, least-squares scale and shift in depth, "
        "the photo as its own reference, trailing spacing); time: CPU time per photo, one torch thread.",
        "",
        "| model | steps | ensemble | AbsRel | delta1 | RMSE (cm) | time per photo (ms) | time / one-step |",
        "|---|---|---|---|---|---|---|---|",
        *table,
    ])
    print(text)
    update_section("one_step_depth", text)


if __name__ == "__main__":
    main(sys.argv[1:])
