"""Typed training config: validation names the key, overrides, frozen copy round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jointportrait.errors import JointPortraitError
from jointportrait.training.config import apply_overrides, config_from_dict, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.mark.parametrize("name", ["stage1_joint", "stage2_inpaint", "tiny_stage1", "tiny_stage2"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.model.in_channels == (18 if "2" in name else 8)
    assert cfg.dataset_sources()


def test_stage1_defaults_are_the_paper_settings():
    cfg = load_config(CONFIGS / "stage1_joint.yaml")
    assert cfg.optim.learning_rate == 1e-5 and cfg.optim.lr_scheduler == "constant"
    assert cfg.train.batch_size * cfg.train.gradient_accumulation_steps == 32  # on one process
    assert cfg.train.max_steps == 30_000 and cfg.data.resolution == 512
    assert {s.source for s in cfg.data.datasets} == {"studio", "wild"}


@pytest.mark.parametrize("data, message", [
    ({"train": {"max_stepz": 3}}, "train.max_stepz"),
    ({"train": {"max_steps": "many"}}, "train.max_steps: expected int"),
    ({"train": {"max_steps": True}}, "train.max_steps: expected int"),
    ({"train": {"mixed_precision": "fp8"}}, "train.mixed_precision"),
    ({"model": {"in_channels": 9}}, "model.in_channels"),
    ({"data": {"datasets": [{"root": "a", "weight": "x"}]}}, "data.datasets[0].weight"),
    ({"data": {"resolution": 60}}, "data.resolution"),
    ({"masks": {"tasks": {"teleport": 1.0}}}, "masks.tasks.teleport"),
    ({"bogus": {}}, "bogus"),
])
def test_invalid_keys_and_types_name_the_key(data, message):
    with pytest.raises(JointPortraitError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(data)


def test_overrides_parse_yaml_scalars_and_validate():
    data = apply_overrides({}, ["train.max_steps=12", "optim.learning_rate=3e-4", "model.init_from=null",
                                "data.root=/x/y", "train.ema.enabled=true"])
    cfg = config_from_dict(data)
    assert (cfg.train.max_steps, cfg.optim.learning_rate, cfg.data.root) == (12, 3e-4, "/x/y")
    assert cfg.train.ema.enabled and cfg.model.init_from is None
    with pytest.raises(JointPortraitError, match="expected key=value"):
        apply_overrides({}, ["train.max_steps"])


def test_frozen_config_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "tiny_stage2.yaml", ["train.seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    frozen = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert frozen["train"]["seed"] == 7 and "ema" in frozen["train"]  # defaults are written out too


def test_load_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {max_steps: [1]}\n")
    with pytest.raises(JointPortraitError, match="bad.yaml: train.max_steps"):
        load_config(bad)
    with pytest.raises(JointPortraitError, match="no such config"):
        load_config(tmp_path / "missing.yaml")
