"""Training the protocol's networks with the project's one trainer, resumably.

A run lives in ``OUT/runs/<method>/seed<k>/<run>``: a finished run (its
``final/``) is kept, an interrupted one continues from its latest checkpoint
(checkpoints every ``steps // 4`` steps), so the protocol can be stopped and
started again at any time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from jointportrait.loading import shipped_base_path
from jointportrait.reproduce.protocol import METHODS, ProtocolConfig, Run
from jointportrait.training.checkpoint import latest_checkpoint
from jointportrait.training.config import config_from_dict
from jointportrait.training.trainer import train

logger = logging.getLogger(__name__)


def run_config(run: Run, method: str, seed: int, cfg: ProtocolConfig, sources: dict[str, Path],
               run_dirs: dict[str, Path]) -> dict:
    """The trainer configuration of one run (plain data, validated by ``config_from_dict``)."""
    steps = cfg.stage_steps(run, METHODS[method])
    base = str(shipped_base_path()) if cfg.base == "shipped" else cfg.base
    model = {"kind": run.kind, "base": base, "image_encoder": "none",
             "in_channels": 18 if run.stage == 2 else 8}
    if run.init is not None:
        model["init_from"] = str(run_dirs[run.init])
    return {
        "model": model,
        "data": {"datasets": [{"root": str(sources[name])} for name in run.data], "resolution": cfg.data.size,
                 "cache_latents": True},
        "optim": {"learning_rate": cfg.learning_rate, "weight_decay": 0.0, "lr_scheduler": "constant_with_warmup",
                  "lr_warmup_steps": min(20, steps // 10)},
        "train": {"seed": seed, "batch_size": cfg.batch_size, "gradient_accumulation_steps": 1, "max_steps": steps,
                  # four checkpoints a run to resume from (one, at the end, for toy runs)
                  "checkpoint_every": steps // 4 if steps >= 8 else steps, "checkpoints_total_limit": 1,
                  "log_every": 10,
                  "reference_dropout": cfg.reference_dropout},
        "validation": {"every": 0},
    }


def train_method(method: str, seed: int, cfg: ProtocolConfig, sources: dict[str, Path], out: Path,
                 say=logger.info) -> dict[str, dict]:
    """Train (or finish, or skip) every run of ``method`` with training seed ``seed``.

    Returns ``{run name: {"dir", "steps", "seconds"}}`` (seconds: this call's training time; 0 when the run was
    already finished)."""
    run_dirs: dict[str, Path] = {}
    done: dict[str, dict] = {}
    for run in METHODS[method]:
        run_dir = out / "runs" / method / f"seed{seed}" / run.name
        run_dirs[run.name] = run_dir
        steps = cfg.stage_steps(run, METHODS[method])
        start = time.perf_counter()
        if not (run_dir / "final" / "model_index.json").exists():
            resume = latest_checkpoint(run_dir) if run_dir.exists() else None
            say(f"  train {method}/{run.name} seed {seed}: {steps} steps" + (f" (resuming {resume.name})" if resume
                                                                             else ""))
            config = config_from_dict(run_config(run, method, seed, cfg, sources, run_dirs))
            train(config, run_dir, resume_from=resume)
        done[run.name] = {"dir": str(run_dir / "final"), "steps": steps,
                          "seconds": round(time.perf_counter() - start, 1)}
    return done
