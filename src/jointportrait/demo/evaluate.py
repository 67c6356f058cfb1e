"""Evaluation of the demo's models on held-out subjects (paper Tables 1-2 in miniature).

Depth estimation (Table 1): AbsRel, delta1, RMSE over the skin mask of each test image after
least-squares scale/shift alignment in depth space, averaged over images
(:func:`jointportrait.evaluation.depth_metrics`), twice: against the ground truth as given (camera
z) and against it min-max normalised to [0, 1] inside the mask (the scale of the paper's Table 1,
docs/EVALUATION.md). Rows: the joint model after the inpainting
fine-tune (masks rgb 0 / depth 1, the reference is the input image), the separate image -> depth
network, and the trivial baseline (the mean training depth map, aligned the same way).

Depth-to-image (Table 2): L1 and SSIM of the generated portrait against the held-out photo
with the ground-truth depth as input and another frame of the same subject as the reference.
Rows: the joint model (masks 1 / 0), the separate depth -> image network, and the trivial
baseline "reference copied". LPIPS and FID need published backbone weights that cannot be
had here; they are left out rather than computed with random backbones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jointportrait.appearance.shading import lambert_shading
from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.applications.depth_to_image import depth_to_image
from jointportrait.applications.relight import relight_image
from jointportrait.data.datasets import FrameDataset
from jointportrait.evaluation import align_prediction, depth_metrics, image_metrics
from jointportrait.evaluation.depth_metrics import ALIGNMENTS, GT_NORMALIZATIONS
from jointportrait.geometry.cameras import intrinsics_from_fov, relative_to_camera_depth
from jointportrait.geometry.normals import normals_from_depth
from jointportrait.io import colorize_depth
from jointportrait.loading import load_joint_pipeline, load_pipeline

GRID_CELL = 128  # grid cells are enlarged (nearest) to about this many pixels so 32 px samples are visible


def _pil(image_tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> PIL."""
    arr = ((image_tensor.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def _cell(arr: np.ndarray | Image.Image) -> Image.Image:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    factor = max(1, GRID_CELL // max(img.width, img.height))
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def _grid(rows: list[list[Image.Image]]) -> Image.Image:
    h, w = rows[0][0].height, rows[0][0].width
    sheet = Image.new("RGB", (w * max(len(r) for r in rows), h * len(rows)), (255, 255, 255))
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            sheet.paste(cell, (j * w, i * h))
    return sheet


def _error_map(aligned: np.ndarray, gt: np.ndarray, mask: np.ndarray, max_rel: float = 0.03) -> np.ndarray:
    """|aligned - gt| / gt on the mask as a colour map (0 .. ``max_rel``), black elsewhere."""
    rel = np.where(mask, np.abs(aligned - gt) / np.maximum(gt, 1e-6), 0.0)
    return colorize_depth(max_rel - np.clip(rel, 0, max_rel), mask, lo=0.0, hi=max_rel)


def _sampling(steps: int) -> str:
    return f"{steps} DDIM step{'s' if steps > 1 else ''}, trailing spacing, every model alike"


def _mean_rows(rows: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    return {name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for name, rs in rows.items()}


def mean_depth_prior(dataset) -> np.ndarray:
    """The trivial baseline: mean of the training depths normalised to [0, 1] (0 = near), per pixel."""
    total = None
    for i in range(len(dataset)):
        rel = (dataset[i]["depth"][0].numpy() + 1.0) / 2.0  # (H, W)
        total = rel if total is None else total + rel
    return (total / len(dataset)).astype(np.float32)


@torch.no_grad()
def evaluate_demo(data: Path, joint_dir: Path, i2d_dir: Path, d2i_dir: Path, out: Path, cfg) -> tuple[dict, dict]:
    device = torch.device(cfg.device)
    test = FrameDataset(data, size=cfg.size, split="test", seed=cfg.seed)
    prior = mean_depth_prior(FrameDataset(data, size=cfg.size, split="train", seed=cfg.seed))
    # every model samples with trailing spacing: few steps from pure noise start at the last training timestep
    # (as estimate_depth does by default)
    spacing = "trailing"
    pipe = load_joint_pipeline(joint_dir, device=device)
    i2d, d2i = load_pipeline(i2d_dir, device=device), load_pipeline(d2i_dir, device=device)

    names = {"ours": "Ours (joint, stage 2)", "separate": "w/o joint learning", "trivial": None}
    depth_rows: dict[str, list[dict]] = {names["ours"]: [], names["separate"]: [],
                                         "Trivial: mean training depth": []}
    minmax_rows: dict[str, list[dict]] = {name: [] for name in depth_rows}
    image_rows: dict[str, list[dict]] = {names["ours"]: [], names["separate"]: [], "Trivial: reference copied": []}
    depth_grid, image_grid = [], []
    relit = None
    steps, depth_steps = cfg.inference_steps, cfg.depth_inference_steps
    for i in range(len(test)):
        s = test[i]
        gt = s["depth_raw"][0].numpy()  # camera z, 0 outside the mask
        valid = s["valid"][0].numpy() > 0.5
        mask = valid & (s["skin_mask"][0].numpy() > 0.5)
        photo = _pil(s["image"])
        reference = _pil(s["reference"])

        # Table 1: depth estimation (the reference is the input image itself)
        ours = estimate_depth(pipe, photo, num_inference_steps=depth_steps, spacing=spacing,
                              generator=torch.Generator().manual_seed(cfg.seed + i)).depth
        sep = i2d(photo, image=photo, num_inference_steps=depth_steps, timestep_spacing=spacing,
                  generator=torch.Generator().manual_seed(cfg.seed + i)).depths[0]
        preds = {names["ours"]: ours, names["separate"]: sep, "Trivial: mean training depth": prior}
        for name, pred in preds.items():
            depth_rows[name].append(depth_metrics(pred, gt, mask, alignment="depth"))
            minmax_rows[name].append(depth_metrics(pred, gt, mask, alignment="depth", gt_normalization="minmax"))

        # Table 2: depth-to-image (ground-truth depth + another frame of the subject as reference)
        ours_img = depth_to_image(pipe, gt, reference, depth_valid=valid, num_inference_steps=steps,
                                  timestep_spacing=spacing, generator=torch.Generator().manual_seed(cfg.seed + i))[0]
        sep_img = d2i(reference, depth=gt, depth_valid=valid, num_inference_steps=steps, timestep_spacing=spacing,
                      output_type="np", generator=torch.Generator().manual_seed(cfg.seed + i)).images[0]
        truth = np.asarray(photo)
        for name, img in ((names["ours"], ours_img), (names["separate"], sep_img),
                          ("Trivial: reference copied", reference)):
            image_rows[name].append(image_metrics(img, truth))

        if len(depth_grid) < 6 and (i % max(1, len(test) // 6) == 0):
            lo, hi = float(gt[valid].min()), float(gt[valid].max())
            row = [_cell(photo), _cell(colorize_depth(gt, valid, lo, hi))]
            for pred in (ours, sep, prior):
                aligned, _ = align_prediction(pred, gt, mask, alignment="depth")
                row += [_cell(colorize_depth(aligned, valid, lo, hi)), _cell(_error_map(aligned, gt, mask))]
            depth_grid.append(row)
            image_grid.append([_cell(reference), _cell(colorize_depth(gt, valid, lo, hi)), _cell(photo),
                               _cell(ours_img), _cell((np.clip(sep_img, 0, 1) * 255 + 0.5).astype(np.uint8))])
            if relit is None:
                camera = relative_to_camera_depth(ours)
                normals = normals_from_depth(camera, intrinsics_from_fov(*ours.shape, 25.0), valid=valid)
                shading = lambert_shading(normals, [-0.6, -0.2, -0.77], intensity=1.0, ambient=0.35)
                lit = relight_image(np.asarray(photo) / 255.0, normals, shading, mask=valid).image
                relit = [_cell(photo), _cell(((normals * 0.5 + 0.5) * 255 * valid[..., None]).astype(np.uint8)),
                         _cell((np.clip(shading, 0, 1) * 255).astype(np.uint8)),
                         _cell((lit * 255 + 0.5).astype(np.uint8))]

    # Joint generation (masks 1 / 1): four samples for the first test subject's reference
    first = test[0]
    joint = pipe(_pil(first["reference"]), num_images_per_reference=4, num_inference_steps=steps,
                 timestep_spacing=spacing, generator=torch.Generator().manual_seed(cfg.seed))
    joint_rows = [[_cell(_pil(first["reference"]))] + [_cell(im) for im in joint.images],
                  [_cell(np.zeros((cfg.size, cfg.size, 3), np.uint8))]
                  + [_cell(colorize_depth(d, d < 0.999, 0.0, 1.0)) for d in joint.depths]]

    figures = {}
    for key, rows in (("depth_estimation", depth_grid), ("depth_to_image", image_grid),
                      ("joint_generation", joint_rows), ("relighting", [relit])):
        path = out / f"{key}.png"
        _grid(rows).save(path)
        figures[key] = path.name
    metrics = {
        "depth_estimation": {"n_images": len(test), "alignment": ALIGNMENTS["depth"],
                             "mask": "skin and valid ground truth", "rows": _mean_rows(depth_rows),
                             "rows_minmax": _mean_rows(minmax_rows),
                             "gt_normalization": {"rows": GT_NORMALIZATIONS["none"],
                                                  "rows_minmax": GT_NORMALIZATIONS["minmax"]},
                             "sampling": _sampling(depth_steps)},
        "depth_to_image": {"n_images": len(test), "rows": _mean_rows(image_rows), "sampling": _sampling(steps),
                           "not_computed": "LPIPS and FID need published backbone weights (none here)"},
    }
    return metrics, figures
