"""Faults during training, injected for real: SIGTERM / SIGINT, kill -9 inside a save, a full disk (a small
tmpfs), a flipped byte in the latest checkpoint, two processes on one run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from jointportrait.cli.main import main
from jointportrait.errors import RunLockedError
from jointportrait.training.checkpoint import verify_checkpoint
from jointportrait.training.run_lock import LOCK_NAME, run_lock
from jointportrait.training.stop_signals import stop_on_signals

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


def _config(tmp_path: Path, synth_data: Path, **train) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "root": str(synth_data)},
                                    "train": {**CONFIG["train"], **train}}))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}


def _train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jointportrait.cli.main", "train", *args]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return {f"{part}.{k}": v for part in ("unet", "reference_unet")
            for k, v in load_file(str(run / "final" / part / "diffusion_pytorch_model.safetensors")).items()}


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def test_sigterm_checkpoints_the_step_reached_and_resume_matches_an_uninterrupted_run(tmp_path, synth_data, capsys):
    config = _config(tmp_path, synth_data, checkpoint_every=100)  # the only checkpoint is the one the signal asks for
    run, log = tmp_path / "stopped", tmp_path / "stopped.log"
    with log.open("w") as err:
        proc = subprocess.Popen(_train_command("--config", str(config), "--output-dir", str(run)), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
        _wait_for(lambda: "| 2/8 " in log.read_text(), proc, "second step")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=240) == 128 + signal.SIGTERM
    stderr = log.read_text()
    assert "SIGTERM received: finishing this step and writing a checkpoint" in stderr
    (line,) = _error_lines(stderr)
    step = int(line.split("at step ")[1].split(":")[0])
    assert 2 <= step < 8
    assert line == f"error: stopped by SIGTERM at step {step}: checkpoint-{step} is saved; continue with --resume latest"
    assert "Traceback" not in stderr
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [f"checkpoint-{step}"]
    assert verify_checkpoint(run / f"checkpoint-{step}") == [] and not (run / "final").exists()

    # resumed, it ends with the same weights as a run that was never stopped (both in this process)
    assert main(["train", "--output-dir", str(run), "--resume", "latest"]) == 0
    AcceleratorState._reset_state(reset_partial_state=True)
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "straight")]) == 0
    a, b = _final_weights(run), _final_weights(tmp_path / "straight")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_9_inside_a_save_then_resume(tmp_path, synth_data, caplog):
    config = _config(tmp_path, synth_data, max_steps=6)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(HERE / "save_pause_train.py"), "4", "train", "--config", str(config),
                             "--output-dir", str(run)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for(lambda: run.with_suffix(".saving").exists(), proc, "save of checkpoint-4")
    proc.kill()
    proc.wait()
    assert (run / "checkpoint-4.tmp").is_dir() and not (run / "checkpoint-4").exists()
    assert verify_checkpoint(run / "checkpoint-2") == []

    assert main(["train", "--output-dir", str(run), "--resume", "latest"]) == 0
    assert "checkpoint-4.tmp, left incomplete by an interrupted save" in caplog.text
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert (run / "final" / "model_index.json").exists()


@pytest.mark.slow  # two full process starts; the lock itself is tested against a holder process below
def test_two_processes_on_one_run_folder(tmp_path, synth_data):
    config = _config(tmp_path, synth_data, max_steps=2)
    run = tmp_path / "run"
    procs = [subprocess.Popen(_train_command("--config", str(config), "--output-dir", str(run)), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 2], results
    (loser,) = [err for code, err in results if code == 2]
    (line,) = _error_lines(loser)
    # the second one finds the folder locked (or, if it came after the first finished, used): never both training
    assert "in use by another training process (pid" in line or "not an empty folder" in line
    assert (run / "final" / "model_index.json").exists()


def test_the_lock_refuses_a_second_holder_and_is_reentrant(tmp_path, capsys, synth_data):
    run = tmp_path / "run"
    run.mkdir()
    # another process holding the lock as run_lock does (flock on the lock file, its pid inside); plain Python,
    # so it starts at once
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "os.write(fd, str(os.getpid()).encode())\nprint('locked', flush=True)\ntime.sleep(600)",
                               str(run / LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        locked = rf"in use by another training process \(pid {holder.pid}\)"
        with pytest.raises(RunLockedError, match=locked), run_lock(run):
            pass
        config = _config(tmp_path, synth_data)
        assert main(["train", "--config", str(config), "--output-dir", str(run)]) == 2
        assert f"in use by another training process (pid {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (run / LOCK_NAME).exists()  # killed holders leave their lock file, but the kernel released the lock
    with run_lock(run), run_lock(run):  # so it does not block; and the lock is re-entrant in one process
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert list(run.iterdir()) == []  # the holder removes the lock file on release
    with run_lock(tmp_path / "new" / "run"):
        pass
    assert not (tmp_path / "new" / "run").exists()  # a folder the lock created and nothing used is removed


def test_stop_handlers_first_signal_requests_second_interrupts():
    """Python runs a signal's handler at the next bytecode of the main thread, which may be inside a garbage
    collector callback (hypothesis installs one): there the KeyboardInterrupt would be unraisable and lost.
    The collector is paused so that the handlers run in this test's own frames."""
    import gc

    before = signal.getsignal(signal.SIGINT)
    collecting = gc.isenabled()
    gc.disable()
    try:
        with stop_on_signals() as stop:
            signal.raise_signal(signal.SIGINT)
            assert stop.requested() == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
    finally:
        if collecting:
            gc.enable()
    assert signal.getsignal(signal.SIGINT) is before


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path, synth_data, capsys, caplog):
    config = _config(tmp_path, synth_data, max_steps=4, ema={"enabled": False})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output-dir", str(run)]) == 0
    AcceleratorState._reset_state(reset_partial_state=True)
    weights = run / "checkpoint-4" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) - 100] ^= 0x10  # one bit of one weight: no NaN, the loss would not notice
    weights.write_bytes(bytes(data))
    capsys.readouterr()

    assert main(["train", "--output-dir", str(run), "--resume", "strict", "--set", "train.max_steps=6"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == (f"error: {run}/checkpoint-4: corrupt checkpoint (model.safetensors: content differs from its "
                    "recorded SHA-256); not resuming from it")

    assert main(["train", "--output-dir", str(run), "--resume", "latest", "--set", "train.max_steps=6"]) == 0
    assert f"{run}/checkpoint-4 is corrupt (model.safetensors: content differs" in caplog.text
    assert "resuming from checkpoint-2 instead of the corrupt checkpoint-4" in caplog.text
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert all(verify_checkpoint(p) == [] for p in run.glob("checkpoint-*"))  # step 4 was trained and saved again


@pytest.fixture
def small_tmpfs(mount_tmpfs):
    """A 40 MB tmpfs: room for one tiny checkpoint (25 MB) but not for the next one beside it."""
    return mount_tmpfs("40m")


def test_disk_full_while_saving_a_checkpoint(small_tmpfs, tmp_path, synth_data, capsys):
    config = _config(tmp_path, synth_data, max_steps=6)
    run = small_tmpfs / "run"
    assert main(["train", "--config", str(config), "--output-dir", str(run)]) == 3
    AcceleratorState._reset_state(reset_partial_state=True)
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == (f"error: {run}: no space left on device while saving checkpoint-4 (checkpoint-2 is intact); "
                    "free some space, then continue with --resume latest")
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"]  # no .tmp left behind
    assert verify_checkpoint(run / "checkpoint-2") == []

    subprocess.run(["mount", "-o", "remount,size=200m", str(small_tmpfs)], check=True)
    assert main(["train", "--output-dir", str(run), "--resume", "latest"]) == 0
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert (run / "final" / "model_index.json").exists()
