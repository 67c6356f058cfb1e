"""A training stage plugs into the one trainer without a line of the loop changing (issue: architecture)."""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from train_fixture_data import ContractDataset

from jointportrait.objective import JointLoss
from jointportrait.training.config import ModelConfig, config_from_dict
from jointportrait.training.stages import STAGES, TrainingStage
from jointportrait.training.trainer import train


class MeanDepthStage(TrainingStage):
    """A toy stage: a linear map from the mean colour of an image to its mean normalised depth."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.model = torch.nn.Linear(3, 1)

    def loss(self, model, batch, generator):
        pred = model(batch["image"].mean(dim=(2, 3)))  # (B, 1)
        target = batch["depth"].mean(dim=(1, 2, 3))[:, None]  # (B, 1)
        loss = F.mse_loss(pred, target)
        return JointLoss(loss, loss.detach(), loss.detach())

    def export(self, model, out):
        out.mkdir(parents=True, exist_ok=True)
        save_file(model.state_dict(), str(out / "model.safetensors"))


def test_a_new_stage_trains_checkpoints_and_exports_through_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setitem(STAGES, "mean_depth", MeanDepthStage)
    cfg = config_from_dict({"optim": {"learning_rate": 0.05, "weight_decay": 0.0},
                            "train": {"batch_size": 4, "gradient_accumulation_steps": 1, "max_steps": 30,
                                      "checkpoint_every": 10, "reference_dropout": 0.0},
                            "validation": {"every": 10}})
    cfg.model.kind = "mean_depth"  # registered by this test only, so not in the config's literal
    result = train(cfg, tmp_path, dataset=ContractDataset())
    assert result.state.step == 30
    assert sum(result.losses[-5:]) < sum(result.losses[:5])
    weights = load_file(str(result.final_dir / "model.safetensors"))
    assert set(weights) == {"weight", "bias"} and (tmp_path / "checkpoint-30").is_dir()
    assert not (tmp_path / "validation").exists()  # the stage does not validate


def test_the_config_names_exactly_the_registered_stages():
    assert set(typing.get_args(typing.get_type_hints(ModelConfig)["kind"])) == set(STAGES)
