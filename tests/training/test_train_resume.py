"""Kill -9 in the middle of a tiny ``jointportrait train`` run on synth data, then ``--resume latest``:
the same final weights (bit for bit) as an uninterrupted run with the same seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
CONFIG = {
    "model": {"base": "tiny"},
    "data": {"resolution": 64, "root": None},
    "optim": {"learning_rate": 1e-3},
    "train": {"batch_size": 2, "gradient_accumulation_steps": 2, "max_steps": 8, "checkpoint_every": 2,
              "checkpoints_total_limit": 2, "ema": {"enabled": True, "decay": 0.9}},
    "validation": {"every": 0},
}


def _command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jointportrait.cli.main", "train", "--config", str(config), "--output-dir", str(out),
            *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return {f"{part}.{k}": v for part in ("unet", "reference_unet")
            for k, v in load_file(str(run / "final" / part / "diffusion_pytorch_model.safetensors")).items()}


def test_kill_and_resume_matches_uninterrupted_run(tmp_path, synth_data):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "root": str(synth_data)}}))

    # the uninterrupted run goes alongside; the interrupted one gets SIGKILL once its first checkpoint is complete
    straight = tmp_path / "straight"
    full = subprocess.Popen(_command(config, straight), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(config, killed), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (killed / "checkpoint-2").is_dir():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within the time limit"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (killed / "final").exists(), "the run finished before it was killed; the test proves nothing"

    resumed = subprocess.run(_command(config, killed, "--resume", "latest"), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, full_err = full.communicate(timeout=300)
    assert full.returncode == 0, full_err[-2000:]

    a, b = _final_weights(killed), _final_weights(straight)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
