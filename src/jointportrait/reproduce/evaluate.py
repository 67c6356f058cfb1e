"""Evaluation of one trained method and seed on held-out subjects (paper Tables 1-2, Fig. 9).

- **Table 1, depth estimation** on the studio test set (exact depth) and on the
  wild test set (held-out wild subjects, their rendered depth): AbsRel, delta1,
  RMSE over the skin mask, least-squares scale and shift in depth space, per
  image then averaged (:func:`jointportrait.evaluation.depth_metrics`), with the
  ground truth in camera centimetres (``metric``) and min-max normalised to
  [0, 1] inside the mask (``minmax``: the scale of the paper's figures).
  Joint models estimate with masks rgb 0 / depth 1 and the input as reference.
- **Table 2, depth-to-image** on the studio test set: L1 and SSIM of the image
  generated from the true depth and another frame of the subject as reference.
- **Fig. 9, identity**: joint generation (masks 1 / 1) from the references of
  held-out studio and wild subjects, scored by :mod:`jointportrait.reproduce.identity`.

Every model samples alike: trailing timestep spacing, ``depth_inference_steps``
for depth, ``inference_steps`` for images; generator seeds depend on the image only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.applications.depth_to_image import depth_to_image
from jointportrait.data.datasets import FrameDataset
from jointportrait.evaluation import depth_metrics, image_metrics
from jointportrait.loading import load_pipeline
from jointportrait.pipelines import JointPortraitPipeline, SeparateConditionalPipeline
from jointportrait.reproduce.identity import IdentityNet, embed, identity_scores
from jointportrait.reproduce.protocol import ProtocolConfig

GT_NORMALIZATIONS = {"metric": "none", "minmax": "minmax"}  # column prefix -> depth_metrics' gt_normalization
SPACING = "trailing"


@dataclass
class TestSets:
    """The held-out data every method is scored on (loaded once)."""

    studio: list[dict]  # items of FrameDataset(studio, split="test"), the first eval_images
    wild: list[dict]
    prior: np.ndarray  # (H, W) mean training depth in [0, 1] (the trivial depth estimator)
    identity_refs: dict[str, list[dict]]  # test set -> one item per held-out subject (its reference frame)


def _pil(image: torch.Tensor) -> PIL.Image.Image:
    """(3, H, W) in [-1, 1] -> PIL."""
    return PIL.Image.fromarray(((image.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).numpy())


def _spread(items: list[dict], n: int) -> list[dict]:
    """``n`` items spread over the list (so several subjects are covered)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def _one_per_subject(dataset: FrameDataset, n: int) -> list[dict]:
    seen, out = set(), []
    for i in range(len(dataset)):
        subject = dataset.records[i].subject
        if subject not in seen:
            seen.add(subject)
            out.append(dataset[i])
    return out[:n]


def load_test_sets(studio: Path, wild_test: Path, cfg: ProtocolConfig) -> TestSets:
    size = cfg.data.size
    studio_test = FrameDataset(studio, size=size, split="test", seed=0)
    wild = FrameDataset(wild_test, size=size, split="test", seed=0)
    train = FrameDataset(studio, size=size, split="train", seed=0)
    prior = np.mean([(train[i]["depth"][0].numpy() + 1.0) / 2.0 for i in range(len(train))], axis=0)
    return TestSets(
        studio=_spread([studio_test[i] for i in range(len(studio_test))], cfg.eval_images),
        wild=_spread([wild[i] for i in range(len(wild))], cfg.eval_images),
        prior=prior.astype(np.float32),
        identity_refs={"studio": _one_per_subject(studio_test, cfg.identity_subjects),
                       "wild": _one_per_subject(wild, cfg.identity_subjects)},
    )


def depth_row(pred: np.ndarray, item: dict) -> dict[str, float]:
    """Table 1 metrics of one prediction under both ground-truth normalisations (``metric_abs_rel``, ...)."""
    gt = item["depth_raw"][0].numpy()  # camera z (cm), 0 outside the mask
    mask = (item["valid"][0].numpy() > 0.5) & (item["skin_mask"][0].numpy() > 0.5)
    return {f"{name}_{key}": value for name, norm in GT_NORMALIZATIONS.items()
            for key, value in depth_metrics(pred, gt, mask, alignment="depth", gt_normalization=norm).items()}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def _generator(i: int) -> torch.Generator:
    return torch.Generator().manual_seed(1000 + i)


def estimate(pipe, item: dict, i: int, cfg: ProtocolConfig) -> np.ndarray:
    """Relative depth ``(H, W)`` in [0, 1] of the item's photo by a joint or an image -> depth model."""
    photo = _pil(item["image"])
    if isinstance(pipe, SeparateConditionalPipeline):
        return pipe(photo, image=photo, num_inference_steps=cfg.depth_inference_steps, timestep_spacing=SPACING,
                    generator=_generator(i)).depths[0]
    return estimate_depth(pipe, photo, num_inference_steps=cfg.depth_inference_steps, spacing=SPACING,
                          generator=_generator(i)).depth


def render(pipe, item: dict, i: int, cfg: ProtocolConfig) -> np.ndarray:
    """The image ``(H, W, 3)`` in [0, 1] generated from the item's true depth and its reference."""
    gt = item["depth_raw"][0].numpy()
    valid = item["valid"][0].numpy() > 0.5
    reference = _pil(item["reference"])
    if isinstance(pipe, SeparateConditionalPipeline):
        return pipe(reference, depth=gt, depth_valid=valid, num_inference_steps=cfg.inference_steps,
                    timestep_spacing=SPACING, output_type="np", generator=_generator(i)).images[0]
    image = depth_to_image(pipe, gt, reference, depth_valid=valid, num_inference_steps=cfg.inference_steps,
                           timestep_spacing=SPACING, generator=_generator(i))[0]
    return np.asarray(image, dtype=np.float32) / 255.0


def generate(pipe, reference: dict, i: int, cfg: ProtocolConfig):
    """Joint samples (images ``(N, H, W, 3)`` in [0, 1], depths ``(N, H, W)``) from a reference."""
    out = pipe(_pil(reference["reference"]), num_images_per_reference=cfg.samples_per_reference,
               num_inference_steps=cfg.inference_steps, timestep_spacing=SPACING, output_type="np",
               generator=_generator(i))
    return out.images, out.depths


@torch.no_grad()
def evaluate_method(method: str, model_dirs: dict[str, Path], tests: TestSets, cfg: ProtocolConfig,
                    identity_net: IdentityNet) -> tuple[dict, dict]:
    """Metrics of one method and seed, and the arrays of its qualitative sheet.

    ``model_dirs``: ``{"joint": folder}`` for a joint model (or the concat ablation), or
    ``{"image_to_depth": ..., "depth_to_image": ...}`` for the separate networks.
    """
    device = torch.device(cfg.device)
    pipes = {k: load_pipeline(v, device=device) for k, v in model_dirs.items()}
    depth_pipe = pipes.get("image_to_depth", pipes.get("joint"))
    image_pipe = pipes.get("depth_to_image", pipes.get("joint"))
    # the separate networks and the inpainting fine-tuned joint models do the conditional tasks; the concat
    # ablation (Sec. 9) is a generator only and is scored on identity alone, as in Fig. 9
    can_inpaint = isinstance(depth_pipe, SeparateConditionalPipeline) or (
        isinstance(depth_pipe, JointPortraitPipeline) and depth_pipe.unet.config.in_channels == 18)
    metrics: dict = {}
    sheet: dict = {}
    if can_inpaint:
        for name, items in (("studio", tests.studio), ("wild", tests.wild)):
            preds = [estimate(depth_pipe, item, i, cfg) for i, item in enumerate(items)]
            metrics[f"depth_{name}"] = _mean([depth_row(p, item) for p, item in zip(preds, items)])
            sheet[f"depth_{name}"] = preds[:4]
        images = [render(image_pipe, item, i, cfg) for i, item in enumerate(tests.studio)]
        truths = [(item["image"].permute(1, 2, 0).numpy() + 1) / 2 for item in tests.studio]
        metrics["depth_to_image"] = _mean([image_metrics(im, t) for im, t in zip(images, truths)])
        sheet["depth_to_image"] = images[:4]
    if "joint" in pipes:
        for name, refs in tests.identity_refs.items():
            samples = [generate(pipes["joint"], ref, i, cfg) for i, ref in enumerate(refs)]
            generated = np.concatenate([s[0] for s in samples])  # (S * n, H, W, 3)
            owners = [i for i, s in enumerate(samples) for _ in range(len(s[0]))]
            ref_emb = embed(identity_net, torch.stack([r["reference"] for r in refs]))
            metrics[f"identity_{name}"] = identity_scores(embed(identity_net, generated), owners, ref_emb)
            sheet[f"joint_{name}"] = samples[:4]
    return metrics, sheet


def trivial_baselines(tests: TestSets, identity_net: IdentityNet) -> dict:
    """The rows every method must beat: the aligned mean training depth, the reference copied (Table 2), and
    for identity real held-out pairs (another frame against the reference) and the reference itself."""
    out = {f"depth_{name}": _mean([depth_row(tests.prior, item) for item in items])
           for name, items in (("studio", tests.studio), ("wild", tests.wild))}
    out["depth_to_image"] = _mean([image_metrics((item["reference"].permute(1, 2, 0).numpy() + 1) / 2,
                                                 (item["image"].permute(1, 2, 0).numpy() + 1) / 2)
                                   for item in tests.studio])
    for name, refs in tests.identity_refs.items():
        ref_emb = embed(identity_net, torch.stack([r["reference"] for r in refs]))
        other = embed(identity_net, torch.stack([r["image"] for r in refs]))
        out[f"identity_{name}"] = identity_scores(other, list(range(len(refs))), ref_emb)
    return out
