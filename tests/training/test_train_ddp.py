"""Two CPU processes with gloo through ``accelerate launch``: a real 2-rank DDP job (ENVIRONMENT.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def test_two_process_ddp_ends_with_identical_weights(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"base": "tiny"},
        "data": {"resolution": 64},
        "optim": {"learning_rate": 1e-3},
        # dropout 0.5 with batch 1: some micro-batches drop every reference (the DDP unused-parameter case)
        "train": {"batch_size": 1, "gradient_accumulation_steps": 2, "max_steps": 3, "checkpoint_every": 3,
                  "reference_dropout": 0.5},
        "validation": {"every": 0},
    }))
    out = tmp_path / "run"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29531",
           str(HERE / "train_fixture_data.py"), "--config", str(config), "--output-dir", str(out), "--rank-weights"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    w0, w1 = ranks[0]["weights"], ranks[1]["weights"]
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # the run trained: the denoiser moved away from its initial weights
    from jointportrait.training.config import config_from_dict
    from jointportrait.training.stages import JointStage

    initial = JointStage(config_from_dict(yaml.safe_load(config.read_text()))).model.state_dict()
    assert not torch.equal(initial["unet.conv_in.weight"], w0["unet.conv_in.weight"])
    assert (out / "final" / "model_index.json").exists()
    assert (out / "checkpoint-3" / "random_states_1.pkl").exists()  # RNG state of every rank
