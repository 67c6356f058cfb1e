"""Evaluation over folders of predictions and ground truth (paper Sec. 5.2, 5.3, 5.5).

Files are matched by name: a prediction ``<stem>.<ext>`` (or ``<stem>_depth.<ext>``,
what ``estimate-depth`` writes) goes with the ground truth ``<stem>.<ext>``;
every prediction needs a ground truth and every ground truth a prediction.
Per-item metrics are computed one at a time and averaged over items; the set
metrics (FID, FVD) are computed once over the whole set.

* depth: predictions ``.npy``/``.exr``/16-bit ``.png``, ground truth ``.npy``
  (0 or non-finite = invalid), optional masks ``<stem>.png`` (nonzero = evaluate).
* image: image files of equal size; LPIPS and FID only with their weights.
* video: one folder of frames per clip, matched by folder name; frames in name order
  (:mod:`~jointportrait.evaluation.video_evaluation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jointportrait.errors import InputError, MissingPathError
from jointportrait.evaluation.depth_metrics import ALIGNMENTS, GT_NORMALIZATIONS, depth_metrics
from jointportrait.evaluation.fid import frechet_distance_from_features
from jointportrait.evaluation.image_metrics import image_metrics, to_image_tensor
from jointportrait.evaluation.inception import FIDInceptionV3
from jointportrait.evaluation.normal_metrics import normal_metrics
from jointportrait.io import DEPTH_SUFFIXES, IMAGE_SUFFIXES, load_depth, load_image

PRED_SUFFIX_STRIP = ("_depth",)


@dataclass
class EvaluationResult:
    """Per-item rows (``name`` + metrics), their mean, set-level metrics and notes on what was left out."""

    task: str
    rows: list[dict[str, Any]]
    mean: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)  # column header overrides for the table
    notes: list[str] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    details: dict[str, Any] = field(default_factory=dict)  # set-level facts (e.g. FVD's window count)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "count": len(self.rows), "mean": self.mean, "labels": self.labels,
                "omitted": self.omitted, "notes": self.notes, **self.details, "per_item": self.rows}


def _folder(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such folder; expected {what}")
    if not path.is_dir():
        raise InputError(f"{path}: not a folder; expected {what}")
    return path


def _by_stem(folder: Path, suffixes: tuple[str, ...], strip: tuple[str, ...] = (),
             first_suffix_only: bool = False) -> dict[str, Path]:
    """Files of ``folder`` with one of ``suffixes``, keyed by stem (minus a ``strip`` ending).

    ``first_suffix_only``: use only the first suffix (in ``suffixes`` order) that
    any file has, e.g. the ``.npy`` depth of a folder that also holds PNG previews.
    """
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes]
    if first_suffix_only and files:
        chosen = next(s for s in suffixes if any(p.suffix.lower() == s for p in files))
        files = [p for p in files if p.suffix.lower() == chosen]
    out: dict[str, Path] = {}
    for p in files:
        stem = p.stem
        for s in strip:
            stem = stem[: -len(s)] if stem.endswith(s) else stem
        if stem in out:
            raise InputError(f"{folder}: two files for {stem!r}: {out[stem].name} and {p.name}")
        out[stem] = p
    return out


def match_pairs(pred: dict[str, Path], gt: dict[str, Path], pred_dir: Path, gt_dir: Path) -> list[str]:
    """Common names, sorted; an error naming the first unmatched files when the sets differ."""
    if not pred:
        raise InputError(f"{pred_dir}: no prediction files found")
    if not gt:
        raise InputError(f"{gt_dir}: no ground-truth files found")
    no_gt, no_pred = sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))
    if no_gt:
        raise InputError(f"{pred_dir}: {len(no_gt)} prediction(s) without ground truth in {gt_dir} "
                         f"(e.g. {', '.join(no_gt[:3])})")
    if no_pred:
        raise InputError(f"{gt_dir}: {len(no_pred)} ground-truth item(s) without prediction in {pred_dir} "
                         f"(e.g. {', '.join(no_pred[:3])})")
    return sorted(pred)


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in rows[0] if k != "name"]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def _load_mask(path: Path) -> np.ndarray:
    return np.asarray(load_image(path).convert("L")) > 127


@dataclass
class DepthItem:
    """One depth prediction with its ground truth (``(H, W)`` arrays), optional mask and intrinsics."""

    name: str
    pred: np.ndarray
    gt: np.ndarray
    mask: np.ndarray | None = None
    intrinsics: np.ndarray | None = None


def evaluate_depth_items(items: Iterable[DepthItem], alignment: str = "depth", pred_kind: str = "depth",
                         normals: bool = True, progress: bool = False,
                         gt_normalization: str = "none") -> EvaluationResult:
    """Table 1 over in-memory items (e.g. a dataset's test split): metrics per image, then the mean.

    ``gt_normalization`` applies to AbsRel, delta1 and RMSE; normals always use the ground truth as given
    (a min-max normalised depth is no camera geometry).
    """
    rows = []
    for item in tqdm(items, desc="depth", disable=not progress):
        try:
            row = {"name": item.name,
                   **depth_metrics(item.pred, item.gt, item.mask, alignment=alignment, pred_kind=pred_kind,
                                   gt_normalization=gt_normalization)}
            if normals:
                row.update(normal_metrics(item.pred, item.gt, item.mask, alignment=alignment, pred_kind=pred_kind,
                                          intrinsics=item.intrinsics))
        except ValueError as exc:
            raise InputError(f"{item.name}: {exc}") from None
        rows.append(row)
    if not rows:
        raise InputError("nothing to evaluate: no depth items")
    notes = [f"alignment: {ALIGNMENTS[alignment]}",
             f"ground truth: {GT_NORMALIZATIONS[gt_normalization]}",
             "metrics per image over the mask and valid ground truth, then mean over images"]
    return EvaluationResult("depth", rows, _mean(rows), notes=notes)


def evaluate_depth(pred_dir: Path, gt_dir: Path, mask_dir: Path | None = None, alignment: str = "depth",
                   pred_kind: str = "depth", normals: bool = True, progress: bool = False,
                   gt_normalization: str = "none") -> EvaluationResult:
    """Table 1 over folders: AbsRel, delta1, RMSE (and normal errors) per image, then the mean."""
    pred_dir, gt_dir = _folder(pred_dir, "depth predictions"), _folder(gt_dir, "ground-truth depth (.npy)")
    preds = _by_stem(pred_dir, DEPTH_SUFFIXES, PRED_SUFFIX_STRIP, first_suffix_only=True)
    gts = _by_stem(gt_dir, (".npy",))
    names = match_pairs(preds, gts, pred_dir, gt_dir)
    masks = _by_stem(_folder(mask_dir, "mask PNGs"), (".png",)) if mask_dir is not None else {}

    def items() -> Iterator[DepthItem]:
        for name in names:
            pred, gt = load_depth(preds[name]), load_depth(gts[name])
            if pred.shape != gt.shape:
                raise InputError(f"{preds[name]}: shape {pred.shape} differs from the ground truth's {gt.shape}")
            mask = None
            if mask_dir is not None:
                if name not in masks:
                    raise MissingPathError(f"{mask_dir}: no mask {name}.png")
                mask = _load_mask(masks[name])
                if mask.shape != gt.shape:
                    raise InputError(f"{masks[name]}: shape {mask.shape} differs from the ground truth's {gt.shape}")
            yield DepthItem(str(preds[name]), pred, gt, mask)

    result = evaluate_depth_items(items(), alignment, pred_kind, normals, progress, gt_normalization)
    for row, name in zip(result.rows, names):
        row["name"] = name
    return result


def _image_tensor(path: Path, device: torch.device | str = "cpu") -> torch.Tensor:
    return to_image_tensor(np.asarray(load_image(path))).to(device)  # (1, 3, H, W) in [0, 1]


def evaluate_image_items(items: Iterable[tuple[str, torch.Tensor, torch.Tensor]],
                         lpips_model: torch.nn.Module | None = None, inception: FIDInceptionV3 | None = None,
                         progress: bool = False) -> EvaluationResult:
    """Table 2 over in-memory ``(name, pred, gt)`` images ``(1, 3, H, W)`` in [0, 1].

    L1, SSIM (and LPIPS with ``lpips_model``) per image; FID over the set with
    ``inception`` (its ``label`` heads the column, so random-init features say so).
    """
    rows, pred_feats, gt_feats = [], [], []
    for name, x, y in tqdm(items, desc="image", disable=not progress):
        if x.shape != y.shape:
            raise InputError(f"{name}: size {tuple(x.shape[-2:])} differs from the ground truth's "
                             f"{tuple(y.shape[-2:])}")
        try:
            rows.append({"name": name, **image_metrics(x, y, lpips_model)})
        except ValueError as exc:
            raise InputError(f"{name}: {exc}") from None
        if inception is not None:
            pred_feats.append(inception(x).cpu().numpy())  # (1, 2048)
            gt_feats.append(inception(y).cpu().numpy())
    if not rows:
        raise InputError("nothing to evaluate: no image pairs")
    mean, labels, notes = _mean(rows), {}, []
    if lpips_model is None:
        notes.append("LPIPS omitted: no --lpips-weights given")
    if inception is None:
        notes.append("FID omitted: no --inception-weights given")
    else:
        if len(rows) < 2:
            raise InputError("FID needs at least 2 image pairs")
        mean["fid"] = frechet_distance_from_features(np.concatenate(pred_feats), np.concatenate(gt_feats))
        if inception.label != "FID":
            labels["fid"] = inception.label
        notes.append(f"FID over {len(rows)} images (published FID uses thousands; small sets are biased upward)")
    return EvaluationResult("image", rows, mean, labels=labels, notes=notes)


def evaluate_image(pred_dir: Path, gt_dir: Path, lpips_weights: Path | None = None, lpips_net: str = "alex",
                   inception_weights: Path | None = None, random_inception_seed: int | None = None,
                   device: torch.device | str = "cpu", progress: bool = False,
                   lpips_backbone: Path | None = None) -> EvaluationResult:
    """Table 2 over folders (see :func:`evaluate_image_items`).

    ``random_inception_seed`` (no weights needed, for demos and smoke tests)
    computes FID on randomly initialised Inception features; the column is then
    labelled as not comparable to published FID.
    """
    from jointportrait.evaluation.lpips import LPIPS

    pred_dir, gt_dir = _folder(pred_dir, "predicted images"), _folder(gt_dir, "ground-truth images")
    preds, gts = _by_stem(pred_dir, IMAGE_SUFFIXES), _by_stem(gt_dir, IMAGE_SUFFIXES)
    names = match_pairs(preds, gts, pred_dir, gt_dir)
    lpips_model = (LPIPS.from_file(lpips_weights, net=lpips_net, backbone=lpips_backbone).to(device)
                   if lpips_weights is not None else None)
    inception = FIDInceptionV3.from_file(inception_weights) if inception_weights is not None else None
    if inception is None and random_inception_seed is not None:
        with torch.random.fork_rng(devices=[]):  # the random features depend on the seed alone
            torch.manual_seed(random_inception_seed)
            inception = FIDInceptionV3()
    inception = inception.to(device) if inception is not None else None
    items = ((name, _image_tensor(preds[name], device), _image_tensor(gts[name], device)) for name in names)
    return evaluate_image_items(items, lpips_model, inception, progress)
