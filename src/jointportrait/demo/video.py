"""The demo's video part (paper Sec. 5.5, Table 3 and supplementary 7.1 in miniature; issue 13).

After the joint model's stage 2, the demo

1. renders synthetic clips with known depth (``jointportrait synth --video``): subjects with
   two clips each, every clip with its own lighting and background and smooth expression and
   head motion; whole subjects are held out;
2. trains stage 3 (``model.kind: motion``): motion modules on the stage-2 model, everything
   else frozen, windows of ``motion_frames`` + ``num_frames`` consecutive frames;
3. animates every held-out clip (self reenactment: the clip's first frame is the reference,
   its ground-truth depth drives it) clip by clip, once with motion frames and once as
   independent clips, with the same model and seeds;
4. reports Table 3's figures that need no downloaded weights: per-frame L1 and SSIM against
   the ground-truth frames, the seam score (:mod:`jointportrait.evaluation.seams`), and
   expression and pose error of tracker fits of the generated against the ground-truth frames
   (:mod:`jointportrait.demo.video_motion`, with the no-motion baseline and the tracker's own
   error against the true parameters), for both ways; writes the first held-out animation as an
   animated GIF for ``index.html``.

LPIPS, FVD, identity similarity and HyperIQA need published network weights that cannot be had
here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from jointportrait.data.datasets import ClipDataset
from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.demo.video_motion import PROTOCOL, DemoMotionScorer
from jointportrait.evaluation.seams import seam_score
from jointportrait.evaluation.video_metrics import clip_frame_metrics
from jointportrait.face_models import FaceModel
from jointportrait.io import colorize_depth
from jointportrait.loading import load_video_pipeline

MODES = {"motion frames": False, "independent clips": True}  # name -> independent_clips
GIF_CELL = 128  # animation cells are enlarged (nearest) to about this many pixels


@dataclass(frozen=True)
class VideoDemoConfig:
    """Sizes of the video part (docs/ANIMATION.md has what they cost and give); its training steps are the
    demo's ``stage3`` budget."""

    subjects: int = 8
    clip_frames: int = 16  # frames per clip; two clips per subject
    test_fraction: float = 0.25  # held-out subjects: 2 of 8, 4 clips
    num_frames: int = 4  # generated at once (the paper: 14)
    motion_frames: int = 2  # (the paper: 4)
    start_probability: float = 0.2
    batch_size: int = 2
    learning_rate: float = 3e-3  # motion modules from zero output (tests/training/test_stage3_seams.py)
    inference_steps: int = 10
    seeds: tuple[int, ...] = (0,)


QUICK_VIDEO = VideoDemoConfig(subjects=4, clip_frames=8)  # ``--quick``: 1 held-out subject, 2 clips of 8 frames


def write_clips(root: Path, face: FaceModel, size: int, seed: int, cfg: VideoDemoConfig) -> Path:
    """Synthetic clips with known depth (two per subject) into ``root``, split by subject."""
    if not (root / "manifest.jsonl").exists():
        write_dataset(root, face, SynthConfig(subjects=cfg.subjects, frames_per_subject=2 * cfg.clip_frames,
                                              size=size, seed=seed + 100, video=True, clip_length=cfg.clip_frames,
                                              val_fraction=0.0, test_fraction=cfg.test_fraction))
    return root


def stage3_config(config: dict, cfg: VideoDemoConfig) -> dict:
    """The demo's training configuration of a ``motion`` run (model, data root, steps, seed) with the video part's
    clips, batch and learning rate."""
    config = {section: dict(values) for section, values in config.items()}
    config["data"].update(cache_latents=False)  # clips are not latent-cached
    config["optim"].update(learning_rate=cfg.learning_rate)
    config["train"].update(batch_size=cfg.batch_size)
    config["video"] = {"num_frames": cfg.num_frames, "motion_frames": cfg.motion_frames,
                       "start_probability": cfg.start_probability, "stride": 1}
    config.pop("masks", None)  # every frame of a clip is depth-to-image
    return config


def _pil(image: torch.Tensor) -> PIL.Image.Image:
    """(3, H, W) in [-1, 1] -> PIL."""
    return PIL.Image.fromarray(((image.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).numpy())


def _uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_animation_gif(path: Path, gt: np.ndarray, depth: np.ndarray, ours: dict[str, np.ndarray],
                        fps: float = 8.0) -> Path:
    """An animated GIF, per frame ``[driving depth | ground truth | one column per mode]``: ``gt`` and ``ours``
    ``(N, H, W, 3)`` in [0, 1], ``depth`` ``(N, H, W)`` relative depth in [0, 1] (0 = near)."""
    columns = [np.stack([colorize_depth(d, lo=0.0, hi=1.0) for d in depth]), _uint8(gt),
               *(_uint8(v) for v in ours.values())]
    frames = np.concatenate(columns, axis=2)  # (N, H, W * columns, 3)
    factor = max(1, GIF_CELL // frames.shape[1])
    frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    images = [PIL.Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def evaluate_video(model: Path, clips: Path, out: Path, size: int, cfg: VideoDemoConfig,
                   face: FaceModel) -> tuple[dict, dict]:
    """Animate every held-out clip both ways; ``(metrics, figures)`` (figure paths relative to ``out``).
    ``face``: the face model the clips were rendered with (the tracker fits it for expression and pose error)."""
    pipe = load_video_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    held_out = ClipDataset(clips, size=size, num_frames=cfg.clip_frames, num_motion_frames=0, split="test")
    motion, no_motion = DemoMotionScorer.create(face, tuple(MODES))
    rows: dict[str, list[dict]] = {name: [] for name in MODES}
    figure = None
    for i in range(len(held_out)):
        clip = held_out[i]
        gt = (clip["image"] + 1) / 2  # (N, 3, H, W) in [0, 1]
        depths, valid = list(clip["depth_raw"][:, 0].numpy()), list(clip["valid"][:, 0].numpy() > 0.5)
        if motion is not None:
            clip_name, start = held_out.windows[i]
            driver = motion.add_driver(_uint8(gt.permute(0, 2, 3, 1).numpy()),
                                       held_out.clips[clip_name][start : start + cfg.clip_frames])
        first = {}
        for seed in cfg.seeds:
            for name, independent in MODES.items():
                result = pipe(_pil(clip["image"][0]), depths, depth_valid=valid, clip_length=cfg.num_frames,
                              motion_frames=cfg.motion_frames, independent_clips=independent,
                              num_inference_steps=cfg.inference_steps, height=size, width=size,
                              generator=torch.Generator().manual_seed(seed))
                frames = torch.from_numpy(result.images).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
                seam = seam_score(result.images, result.clip_starts)
                rows[name].append({**clip_frame_metrics(frames, gt.float()), "seam_score": seam.score,
                                   "boundary_change": seam.boundary_change, "inner_change": seam.inner_change})
                if motion is not None:
                    motion.add_generated(name, _uint8(result.images), driver)
                if seed == cfg.seeds[0]:
                    first[name] = result.images
        if figure is None:
            driving = ((clip["depth"][:, 0] + 1) / 2).numpy()  # normalised driving depth, 1 = far/background
            figure = write_animation_gif(out / "fig_animation.gif", gt.permute(0, 2, 3, 1).numpy(), driving, first)
    keys = ("l1", "ssim", "seam_score", "boundary_change", "inner_change")
    table = {name: {k: float(np.mean([r[k] for r in values])) for k in keys} for name, values in rows.items()}
    metrics = {
        "rows": table,
        "n_clips": len(held_out), "n_animations": len(rows["motion frames"]),
        "frames_per_clip": cfg.clip_frames, "clip_starts": list(range(0, cfg.clip_frames, cfg.num_frames)),
        "seam_wins": int(sum(m["seam_score"] < r["seam_score"]
                             for m, r in zip(rows["motion frames"], rows["independent clips"]))),
        "sampling": (f"self reenactment: each held-out clip's first frame is the reference, its ground-truth depth "
                     f"drives it; clips of {cfg.num_frames} frames with {cfg.motion_frames} motion frames, or "
                     f"independent clips (the reference as every clip's motion frames); "
                     f"{cfg.inference_steps} DDIM steps; seeds {list(cfg.seeds)}, the same for both"),
        "not_computed": "LPIPS, FVD, identity similarity and HyperIQA need published network weights",
        "config": asdict(cfg),
    }
    if motion is None:
        metrics["facial_motion"] = {"not_computed": f"expression and pose error need the face detector: {no_motion}"}
    else:
        metrics["facial_motion"] = {"rows": motion.table.summary(), "protocol": PROTOCOL}
    return metrics, {"animation": figure.name}
