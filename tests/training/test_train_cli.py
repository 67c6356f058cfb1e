"""End to end through the command line on data made by ``jointportrait synth``: stage 1, then stage 2."""

from __future__ import annotations

from pathlib import Path

from jointportrait.cli.main import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


def test_stage1_then_stage2_on_synth_data(synth_data, tmp_path, capsys):
    from accelerate.state import AcceleratorState

    from jointportrait.loading import load_joint_pipeline

    s1 = tmp_path / "s1"
    mix = f"data.datasets=[{{root: {synth_data}, weight: 1.0, source: studio}}, {{root: {synth_data}, weight: 2.0}}]"
    code = main(["train", "--config", str(CONFIGS / "tiny_stage1.yaml"), "--output-dir", str(s1),
                 "--set", "data.root=null", "--set", mix, "--set", "train.max_steps=3",
                 "--set", "train.checkpoint_every=2", "--set", "validation.every=3",
                 "--set", "validation.num_inference_steps=1"])
    assert code == 0
    assert "step 3: loss" in capsys.readouterr().out
    assert (s1 / "validation" / "step-3.png").exists()
    AcceleratorState._reset_state(reset_partial_state=True)

    s2 = tmp_path / "s2"
    code = main(["train", "--config", str(CONFIGS / "tiny_stage2.yaml"), "--output-dir", str(s2),
                 "--set", f"data.root={synth_data}", "--set", f"model.init_from={s1}",
                 "--set", "train.max_steps=2", "--set", "validation.every=0"])
    assert code == 0
    assert load_joint_pipeline(s2 / "final").unet.config.in_channels == 18
    AcceleratorState._reset_state(reset_partial_state=True)

    # bad input is one line and exit 2
    assert main(["train", "--config", str(CONFIGS / "tiny_stage1.yaml"), "--output-dir", str(tmp_path / "s3"),
                 "--set", "train.max_stepz=1"]) == 2
    assert "unknown config key train.max_stepz" in capsys.readouterr().err
