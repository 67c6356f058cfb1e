"""Checkpoints: atomic, hashed, verified before use, never unpickled beyond plain tensors; keep the last K."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil

import pytest
import torch

from jointportrait.errors import CheckpointError, DiskFullError, MissingPathError
from jointportrait.training import checkpoint as ckpt


@pytest.fixture
def accelerator():
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    acc.model, acc.opt, acc.sched = acc.prepare(model, opt, sched)
    return acc


def _save(acc, folder, step, keep_last=3, **states):
    states = states or {"train_state": ckpt.TrainState(step=step)}
    return ckpt.save_checkpoint(acc, folder, step, keep_last, states)


def _flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_keep_last_k_and_latest(tmp_path, accelerator):
    for step in (1, 2, 3, 4):
        _save(accelerator, tmp_path, step, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    assert ckpt.resolve_resume(tmp_path, "latest") == tmp_path / "checkpoint-4"
    state = ckpt.TrainState()
    ckpt.load_checkpoint(accelerator, tmp_path / "checkpoint-3", {"train_state": state})
    assert state.step == 3


def test_no_pickle_written_for_the_trainers_states(tmp_path, accelerator):
    from diffusers.training_utils import EMAModel

    ema = EMAModel([torch.nn.Parameter(torch.randn(4, 3))], decay=0.9)
    ema.optimization_step = 7
    path = _save(accelerator, tmp_path, 1, train_state=ckpt.TrainState(1, 4, 0), ema=ema)
    names = sorted(p.name for p in path.iterdir())
    assert not [n for n in names if n.startswith("custom_checkpoint")]
    assert {"train_state.json", "ema.json", "ema.safetensors", "model.safetensors", ckpt.CHECKSUMS} <= set(names)
    restored = EMAModel([torch.nn.Parameter(torch.zeros(4, 3))], decay=0.5)
    state = ckpt.TrainState()
    ckpt.load_checkpoint(accelerator, path, {"train_state": state, "ema": restored})
    assert (state.step, state.micro_batches) == (1, 4)
    assert restored.decay == 0.9 and restored.optimization_step == 7
    assert torch.equal(restored.shadow_params[0], ema.shadow_params[0])


def test_checksums_are_sha256_of_every_file(tmp_path, accelerator):
    path = _save(accelerator, tmp_path, 1)
    listed = {}
    for line in (path / ckpt.CHECKSUMS).read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = sorted(p.name for p in path.iterdir() if p.name != ckpt.CHECKSUMS)
    assert sorted(listed) == files
    for name in files:
        assert listed[name] == hashlib.sha256((path / name).read_bytes()).hexdigest()
    assert ckpt.verify_checkpoint(path) == []


def test_a_flipped_byte_in_any_file_is_detected(tmp_path, accelerator):
    good = _save(accelerator, tmp_path / "run", 1)
    names = sorted(p.name for p in good.iterdir())
    assert len(names) >= 6  # model, optimizer, scheduler, RNG states, train state, SHA256SUMS
    for name in names:
        copy = tmp_path / "copies" / name / good.name
        shutil.copytree(good, copy)
        _flip_byte(copy / name, offset=0 if name == ckpt.CHECKSUMS else None)
        problems = ckpt.verify_checkpoint(copy)
        assert problems, f"a flipped byte in {name} went unnoticed"
        if name != ckpt.CHECKSUMS:
            assert problems == [f"{name}: content differs from its recorded SHA-256"]
        with pytest.raises(CheckpointError, match="corrupt checkpoint"):
            ckpt.load_checkpoint(accelerator, copy, {"train_state": ckpt.TrainState()})


def test_missing_unlisted_and_malformed(tmp_path, accelerator):
    path = _save(accelerator, tmp_path, 1)
    (path / "optimizer.bin").unlink()
    (path / "extra.pkl").write_bytes(b"x")
    problems = ckpt.verify_checkpoint(path)
    assert "optimizer.bin: missing" in problems and f"extra.pkl: not listed in {ckpt.CHECKSUMS}" in problems
    (path / ckpt.CHECKSUMS).write_text("not a checksum line\n")
    assert f"{ckpt.CHECKSUMS} line 1 is malformed" in ckpt.verify_checkpoint(path)
    (path / ckpt.CHECKSUMS).unlink()
    assert ckpt.verify_checkpoint(path)[0].startswith(f"no {ckpt.CHECKSUMS}")


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, accelerator, caplog):
    for step in (1, 2, 3):
        _save(accelerator, tmp_path, step)
    _flip_byte(tmp_path / "checkpoint-3" / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="jointportrait.training.checkpoint"):
        assert ckpt.resolve_resume(tmp_path, "latest") == tmp_path / "checkpoint-2"
    assert "checkpoint-3 is corrupt (model.safetensors: content differs" in caplog.text
    assert "resuming from checkpoint-2 instead of the corrupt checkpoint-3" in caplog.text
    with pytest.raises(CheckpointError, match=r"checkpoint-3: corrupt checkpoint \(model.safetensors"):
        ckpt.resolve_resume(tmp_path, "strict")
    with pytest.raises(CheckpointError, match="checkpoint-3: corrupt checkpoint"):
        ckpt.resolve_resume(tmp_path, str(tmp_path / "checkpoint-3"))
    for step in (1, 2):
        _flip_byte(tmp_path / f"checkpoint-{step}" / "train_state.json", offset=3)
    with pytest.raises(CheckpointError, match="all 3 checkpoints are corrupt"):
        ckpt.resolve_resume(tmp_path, "latest")
    assert ckpt.latest_intact_checkpoint(tmp_path) is None


def test_a_pickle_that_runs_code_is_refused(tmp_path, accelerator):
    """accelerate's training-state pickles are loaded with weights_only=True: a crafted optimizer.bin fails to
    load (one error naming the checkpoint) and its code never runs, even when SHA256SUMS was rewritten to match."""
    path = _save(accelerator, tmp_path, 1)
    marker = tmp_path / "the_pickle_ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"state": {}, "param_groups": [], "payload": Payload()}, path / "optimizer.bin")
    ckpt.write_checksums(path)
    assert ckpt.verify_checkpoint(path) == []
    with pytest.raises(CheckpointError, match=r"checkpoint-1: cannot be loaded \(Weights only load failed"):
        ckpt.load_checkpoint(accelerator, path, {"train_state": ckpt.TrainState()})
    assert not marker.exists()


def test_interrupted_save_leaves_no_complete_checkpoint(tmp_path, accelerator, monkeypatch, caplog):
    _save(accelerator, tmp_path, 1)

    def killed(*args):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _save(accelerator, tmp_path, 2)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint-2.tmp").is_dir()
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-1"
    with caplog.at_level(logging.WARNING, logger="jointportrait.training.checkpoint"):
        assert ckpt.remove_incomplete(tmp_path) == [tmp_path / "checkpoint-2.tmp"]
    assert "checkpoint-2.tmp, left incomplete by an interrupted save" in caplog.text
    assert not (tmp_path / "checkpoint-2.tmp").exists()


@pytest.mark.parametrize("fault", ["oserror", "safetensors"])
def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, accelerator, monkeypatch, fault):
    from safetensors import SafetensorError

    _save(accelerator, tmp_path, 1)
    before = (tmp_path / "checkpoint-1" / ckpt.CHECKSUMS).read_text()
    real_save_state = accelerator.save_state

    def full_disk(folder, **kwargs):
        real_save_state(folder, **kwargs)  # some files are written, then the disk is full
        if fault == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(accelerator, "save_state", full_disk)
    with pytest.raises(DiskFullError, match=r"no space left on device while saving checkpoint-2 \(checkpoint-1 is "
                                            r"intact\); free some space, then continue with --resume latest"):
        _save(accelerator, tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]
    assert (tmp_path / "checkpoint-1" / ckpt.CHECKSUMS).read_text() == before
    assert ckpt.verify_checkpoint(tmp_path / "checkpoint-1") == []


def test_resolve_resume_errors(tmp_path):
    with pytest.raises(MissingPathError, match="no complete checkpoint"):
        ckpt.resolve_resume(tmp_path, "latest")
    with pytest.raises(MissingPathError, match="no complete checkpoint"):
        ckpt.resolve_resume(tmp_path, "strict")
    with pytest.raises(MissingPathError, match="not a checkpoint folder"):
        ckpt.resolve_resume(tmp_path, str(tmp_path))
