"""Atomic checkpoints: a save interrupted before its rename never looks complete; keep the last K."""

from __future__ import annotations

import os

import pytest
import torch

from jointportrait.errors import MissingPathError
from jointportrait.training import checkpoint as ckpt


@pytest.fixture
def accelerator():
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    acc.state_obj = ckpt.TrainState(step=0)
    acc.register_for_checkpointing(acc.state_obj)
    return acc


def test_keep_last_k_and_latest(tmp_path, accelerator):
    for step in (1, 2, 3, 4):
        accelerator.state_obj.step = step
        ckpt.save_checkpoint(accelerator, tmp_path, step, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    assert ckpt.resolve_resume(tmp_path, "latest") == tmp_path / "checkpoint-4"
    accelerator.state_obj.step = 0
    accelerator.load_state(str(tmp_path / "checkpoint-3"))
    assert accelerator.state_obj.step == 3


def test_interrupted_save_leaves_no_complete_checkpoint(tmp_path, accelerator, monkeypatch):
    ckpt.save_checkpoint(accelerator, tmp_path, 1, keep_last=3)

    def killed(*args):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(accelerator, tmp_path, 2, keep_last=3)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint-2.tmp").is_dir()
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-1"
    ckpt.remove_incomplete(tmp_path)
    assert not (tmp_path / "checkpoint-2.tmp").exists()


def test_resolve_resume_errors(tmp_path):
    with pytest.raises(MissingPathError, match="no complete checkpoint"):
        ckpt.resolve_resume(tmp_path, "latest")
    with pytest.raises(MissingPathError, match="not a checkpoint folder"):
        ckpt.resolve_resume(tmp_path, str(tmp_path))
