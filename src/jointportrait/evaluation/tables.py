"""Markdown tables laid out like the paper's Tables 1-3 (Sec. 5.2, 5.3, 5.5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# task -> (metric key, column header) in the paper's order; arrows say which direction is better.
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "depth": (("abs_rel", "AbsRel↓"), ("delta1", "δ1↑"), ("rmse", "RMSE↓"),
              ("normal_mean", "Normal mean°↓"), ("normal_median", "Normal median°↓"),
              ("normal_within_11.25", "<11.25°↑"), ("normal_within_22.5", "<22.5°↑"),
              ("normal_within_30", "<30°↑")),
    "image": (("l1", "L1↓"), ("ssim", "SSIM↑"), ("lpips", "LPIPS↓"), ("fid", "FID↓")),
    "video": (("l1", "L1↓"), ("ssim", "SSIM↑"), ("lpips", "LPIPS↓"), ("fvd", "FVD↓"),
              ("id_similarity", "ID Similarity↑"), ("id_similarity_dlib", "ID Sim. (dlib)↑"),
              ("image_quality", "Image Quality↑"), ("expression_error", "Expression↓"), ("pose_error", "Pose°↓"),
              ("seam_score", "Seam (1 = seamless)")),
}

# metric key -> its name in sentences ("FVD omitted: ...")
METRIC_NAMES: dict[str, str] = {
    "l1": "L1", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID", "fvd": "FVD", "id_similarity": "ID similarity",
    "id_similarity_dlib": "ID similarity (dlib)", "image_quality": "Image quality",
    "expression_error": "Expression error", "pose_error": "Pose error", "seam_score": "Seam score",
}


def format_value(value: float) -> str:
    """Three decimals, as in the paper's tables."""
    return f"{value:.3f}"


def markdown_table(task: str, rows: Sequence[tuple[str, Mapping[str, float]]],
                   labels: Mapping[str, str] | None = None) -> str:
    """One row per ``(method, metrics)``; only columns present in some row are shown.

    ``labels`` overrides a column header (e.g. FID from randomly initialised
    features gets a header that says so).
    """
    if task not in TABLE_COLUMNS:
        raise ValueError(f"task must be one of {tuple(TABLE_COLUMNS)}, got {task!r}")
    labels = dict(labels or {})
    cols = [(k, labels.get(k, h)) for k, h in TABLE_COLUMNS[task] if any(k in m for _, m in rows)]
    lines = ["| Method | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
    for method, metrics in rows:
        cells = [format_value(metrics[k]) if k in metrics else "–" for k, _ in cols]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
