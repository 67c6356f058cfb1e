"""The miniature protocol, fixed before any run (issue 16; paper Sec. 5.1-5.2, 9, Tables 1-2, Fig. 9).

Every method starts from the shipped pretrained base (the SD 1.5 stand-in,
:func:`jointportrait.loading.shipped_base_path`) and trains on the same data with
the same settings for the same number of optimizer steps ``steps`` per network:

=================  =====================================================  ===============
method             training runs (``model.kind``)                          data
=================  =====================================================  ===============
``ours``           stage 1 ``joint`` (8 ch), then stage 2 ``joint`` (18)   studio + wild
``separate``       ``image_to_depth`` and ``depth_to_image`` (Sec. 5.2)     studio + wild
``no_reference``   ``concat_reference`` (Sec. 9, Fig. 9 top)               studio + wild
``studio_only``    as ours                                                studio
``wild_only``      as ours                                                wild
=================  =====================================================  ===============

The joint model splits its ``steps`` in the paper's proportion of time: 3 days
of joint learning against 15 hours of inpainting fine-tuning (Sec. 5.1), i.e.
stage 2 gets 15 / (72 + 15) = 17 % of the steps. Each separate network gets all
``steps`` (the joint model's total). The stage-2 task mix is the trainer's
default (the paper names the tasks, not their weights). Every network is
trained with ``seeds`` training seeds (data order, noise, masks, dropout); the
data and the base are the same for every seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jointportrait.reproduce.data import DataSizes

STAGE2_SHARE = 15.0 / (72.0 + 15.0)  # paper Sec. 5.1: 3 days stage 1, 15 h stage 2


@dataclass(frozen=True)
class Run:
    """One training run of a method: its name, ``model.kind``, data sources and the run it starts from."""

    name: str
    kind: str
    data: tuple[str, ...]  # "studio" and/or "wild"
    stage: int = 1  # 1: from the base; 2: the inpainting fine-tune of ``init``
    init: str | None = None  # name of the run this one starts from


MIX = ("studio", "wild")


def _joint(data: tuple[str, ...]) -> tuple[Run, ...]:
    return (Run("stage1", "joint", data), Run("stage2", "joint", data, stage=2, init="stage1"))


# method -> its training runs (explicit registry; the table of the module docstring)
METHODS: dict[str, tuple[Run, ...]] = {
    "ours": _joint(MIX),
    "separate": (Run("image_to_depth", "image_to_depth", MIX), Run("depth_to_image", "depth_to_image", MIX)),
    "no_reference": (Run("concat_reference", "concat_reference", MIX),),
    "studio_only": _joint(("studio",)),
    "wild_only": _joint(("wild",)),
}

LABELS = {
    "ours": "Ours (joint, studio + wild)",
    "separate": "w/o joint learning",
    "no_reference": "w/o ReferenceNet",
    "studio_only": "Ours, studio only",
    "wild_only": "Ours, wild only",
}


@dataclass(frozen=True)
class ProtocolConfig:
    """Sizes and settings of one protocol run (``quick``: the same protocol at toy size)."""

    data: DataSizes = field(default_factory=DataSizes)
    base: str = "shipped"  # the shipped pretrained base; "tiny" (random tiny SD layout) for the quick run only
    steps: int = 300  # optimizer steps per network (the joint model: stage 1 + stage 2)
    batch_size: int = 16
    learning_rate: float = 1e-4  # fine-tuning a pretrained base; the paper's 1e-5 is for 30k steps at 512 px
    reference_dropout: float = 0.1
    seeds: int = 3
    eval_images: int = 32  # held-out images per test set (studio, wild)
    identity_subjects: int = 12  # held-out subjects whose references the identity comparison generates from
    samples_per_reference: int = 2
    inference_steps: int = 10  # depth-to-image and joint generation (trailing spacing)
    depth_inference_steps: int = 1  # depth estimation: one trailing step, as the demo (every model alike)
    identity_steps: int = 600  # training steps of the identity network
    device: str = "cpu"

    def stage_steps(self, run: Run, method_runs: tuple[Run, ...]) -> int:
        """Optimizer steps of ``run``: the joint model's two stages share ``steps``; any other run has all."""
        if len(method_runs) == 2 and method_runs[1].init == method_runs[0].name:
            stage2 = max(1, round(self.steps * STAGE2_SHARE))
            return stage2 if run.stage == 2 else max(1, self.steps - stage2)
        return self.steps


def quick_config(seeds: int = 2, device: str = "cpu") -> ProtocolConfig:
    """The protocol at toy size for the test suite: a few images, two steps per network, and a random tiny
    base instead of the shipped one (loading and saving the shipped base's networks costs seconds per run)."""
    return ProtocolConfig(base="tiny",
        data=DataSizes(studio_subjects=16, studio_frames=2, wild_subjects=8, wild_frames=3, tracker_steps=(5, 10)),
        steps=2, batch_size=4, seeds=seeds, eval_images=3, identity_subjects=3, samples_per_reference=1,
        inference_steps=2, identity_steps=5, device=device)
