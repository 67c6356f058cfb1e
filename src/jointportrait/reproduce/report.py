"""Aggregating seeds and writing the protocol's tables and figures (Markdown, PNG, JSON).

Each metric is reported as mean ± standard deviation over the training seeds
(sample standard deviation, ``ddof=1``). A difference between a method and ours
*exceeds the seed spread* when ``|mean_a - mean_b| > sd_a + sd_b``, i.e. the two
one-standard-deviation intervals do not overlap; with three seeds this is a
rule of thumb, not a significance test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from jointportrait.io import colorize_depth
from jointportrait.reproduce.protocol import LABELS

# (section, metric key, column label, lower is better)
DEPTH_COLUMNS = [(f"{n}_{k}", f"{label} ({n})", k != "delta1")
                 for n in ("metric", "minmax") for k, label in (("abs_rel", "AbsRel"), ("delta1", "δ1"),
                                                                ("rmse", "RMSE"))]
TABLES = {
    "depth_studio": ("Table 1: depth estimation, held-out studio subjects (exact depth)", DEPTH_COLUMNS),
    "depth_wild": ("Table 1b: depth estimation, held-out wild subjects (rendered depth)", DEPTH_COLUMNS),
    "depth_to_image": ("Table 2: depth-to-image, held-out studio subjects",
                       [("l1", "L1", True), ("ssim", "SSIM", False)]),
    "identity_studio": ("Fig. 9: identity of joint generations, held-out studio references",
                        [("similarity", "cosine to reference", False), ("rank1", "rank-1 identification", False)]),
    "identity_wild": ("Fig. 9: identity of joint generations, held-out wild references",
                      [("similarity", "cosine to reference", False), ("rank1", "rank-1 identification", False)]),
}
TRIVIAL_LABELS = {"depth_studio": "Trivial: mean training depth (aligned)", "depth_wild":
                  "Trivial: mean training depth (aligned)", "depth_to_image": "Trivial: reference copied",
                  "identity_studio": "Real pair: another frame of the subject", "identity_wild":
                  "Real pair: another frame of the subject"}


def summarize(per_seed: dict[str, dict[int, dict]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{method: {seed: metrics}}`` -> ``{method: {section: {metric: {mean, std, n}}}}``."""
    out: dict = {}
    for method, seeds in per_seed.items():
        for section in TABLES:
            values: dict[str, list[float]] = {}
            for metrics in seeds.values():
                for key, value in metrics.get(section, {}).items():
                    values.setdefault(key, []).append(value)
            if values:
                out.setdefault(method, {})[section] = {
                    k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                        "n": len(v)} for k, v in values.items()}
    return out


def differences(summary: dict, reference: str = "ours") -> list[dict]:
    """Every metric where a method differs from ``reference``, and whether the gap exceeds the seed spread."""
    rows = []
    for method, sections in summary.items():
        if method == reference:
            continue
        for section, metrics in sections.items():
            for key, b in metrics.items():
                a = summary.get(reference, {}).get(section, {}).get(key)
                if a is None:
                    continue
                delta = b["mean"] - a["mean"]
                rows.append({"method": method, "section": section, "metric": key, "ours": a["mean"],
                             "other": b["mean"], "delta": delta, "spread": a["std"] + b["std"],
                             "exceeds_spread": bool(abs(delta) > a["std"] + b["std"] and min(a["n"], b["n"]) > 1)})
    return rows


def _fmt(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}" if stat["n"] > 1 else f"{stat['mean']:.4f}"


def markdown_tables(summary: dict, trivial: dict, seeds: int) -> str:
    """The tables of every section, one row per method (mean ± sd over seeds) and the trivial row."""
    parts = []
    for section, (title, columns) in TABLES.items():
        rows = [(m, s[section]) for m, s in summary.items() if section in s]
        if not rows:
            continue
        lines = [f"### {title}", "", "| Method | " + " | ".join(c[1] for c in columns) + " |",
                 "|---|" + "---|" * len(columns)]
        for method, metrics in rows:
            cells = [_fmt(metrics[c[0]]) if c[0] in metrics else "" for c in columns]
            lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
        if section in trivial:
            lines.append(f"| {TRIVIAL_LABELS[section]} | "
                         + " | ".join(f"{trivial[section].get(c[0], float('nan')):.4f}" for c in columns) + " |")
        parts.append("\n".join(lines) + f"\n\n{seeds} training seed(s) per method; mean ± sample standard deviation.\n")
    return "\n".join(parts)


def markdown_differences(rows: list[dict]) -> str:
    lines = ["### Differences from ours that exceed the seed spread (|Δ| > sd_ours + sd_other)", ""]
    hits = [r for r in rows if r["exceeds_spread"]]
    if not hits:
        return "\n".join(lines + ["None.", ""])
    lines += ["| Method | Section | Metric | Ours | Other | Δ |", "|---|---|---|---|---|---|"]
    lines += [f"| {LABELS.get(r['method'], r['method'])} | {r['section']} | {r['metric']} | {r['ours']:.4f} | "
              f"{r['other']:.4f} | {r['delta']:+.4f} |" for r in hits]
    return "\n".join(lines) + "\n"


def _cell(array: np.ndarray, scale: int = 2) -> np.ndarray:
    """(H, W, 3) in [0, 1] or uint8, enlarged ``scale`` times (nearest) for viewing."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return a.repeat(scale, 0).repeat(scale, 1)


def _depth_cell(depth: np.ndarray) -> np.ndarray:
    return colorize_depth(np.asarray(depth), np.asarray(depth) < 0.999, 0.0, 1.0)


def method_sheet(path: Path, items: list[dict], sheet: dict) -> Path:
    """Rows: photo, true depth, estimated depth, image from the true depth, two joint samples (RGB, depth)."""
    rows = []
    for i, item in enumerate(items[:4]):
        photo = (item["image"].permute(1, 2, 0).numpy() + 1) / 2
        row = [photo, _depth_cell((item["depth"][0].numpy() + 1) / 2)]
        if "depth_studio" in sheet:
            row += [_depth_cell(sheet["depth_studio"][i]), sheet["depth_to_image"][i]]
        if "joint_studio" in sheet and i < len(sheet["joint_studio"]):
            images, depths = sheet["joint_studio"][i]
            row += [(item["reference"].permute(1, 2, 0).numpy() + 1) / 2, images[0], _depth_cell(depths[0])]
        rows.append(np.concatenate([_cell(c) for c in row], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    Image.fromarray(np.concatenate(rows)).save(path)
    return path


def identity_figure(path: Path, refs: list[dict], sheets: dict[str, dict], key: str) -> Path:
    """Fig. 9: per reference, the reference then one joint sample of each method that generates."""
    rows = []
    for i, ref in enumerate(refs[:4]):
        row = [(ref["reference"].permute(1, 2, 0).numpy() + 1) / 2]
        for sheet in sheets.values():
            if key in sheet and i < len(sheet[key]):
                row.append(sheet[key][i][0][0])
        rows.append(np.concatenate([_cell(c) for c in row], axis=1))
    Image.fromarray(np.concatenate(rows)).save(path)
    return path
