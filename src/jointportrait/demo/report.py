"""The demo's HTML page: image grids, the animation and the tables laid out like the paper's Tables 1-3."""

from __future__ import annotations

import html
import json
from pathlib import Path

DEPTH_COLUMNS = (("abs_rel", "AbsRel &darr;"), ("delta1", "&delta;<sub>1</sub> &uarr;"), ("rmse", "RMSE &darr;"))
IMAGE_COLUMNS = (("l1", "L1 &darr;"), ("ssim", "SSIM &uarr;"))
VIDEO_COLUMNS = (("l1", "L1 &darr;"), ("ssim", "SSIM &uarr;"), ("seam_score", "seam score (1 = seamless)"),
                 ("boundary_change", "change at boundaries"), ("inner_change", "change inside clips"))
MOTION_COLUMNS = (("expression_error", "expression error &darr;"), ("pose_error", "pose error (degrees) &darr;"))
SEED_NOTE = ("One training seed. Another seed moves these numbers: jointportrait reproduce trains every method "
             "with three seeds and reports which differences exceed that spread (docs/REPRODUCTION.md).")


def _cell(value: float | str | None) -> str:
    """A table cell: figures to 4 decimals, None as n/a (not computed), text as it is."""
    if isinstance(value, str):
        return html.escape(value)
    return "n/a" if value is None else f"{value:.4f}"


def _table(rows: dict[str, dict[str, float | str | None]], columns) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_cell(vals[key])}</td>" for key, _ in columns) + "</tr>"
        for name, vals in rows.items()
    )
    return f"<table><tr><th>Method</th>{head}</tr>{body}</table>"


def _markdown_rows(rows: dict[str, dict[str, float | str | None]], columns, plain: list[str] | None = None) -> list[str]:
    plain = plain or [label.split(" ")[0].replace("&delta;<sub>1</sub>", "delta1") for _, label in columns]
    return (["| Method | " + " | ".join(plain) + " |", "|---" * (len(columns) + 1) + "|"]
            + [f"| {name} | " + " | ".join(_cell(vals[k]) for k, _ in columns) + " |" for name, vals in rows.items()])


def _motion_rows(facial_motion: dict) -> dict[str, dict]:
    """The expression / pose rows with a column of frames compared (of all frames)."""
    return {name: row | {"compared": f"{row['frames_compared']} / {row['frames']}"}
            for name, row in facial_motion["rows"].items()}


def markdown_tables(metrics: dict) -> str:
    """The tables in Markdown (for docs and the terminal)."""
    lines = []
    for key, title, columns in (("depth_estimation", "Depth estimation (Table 1)", DEPTH_COLUMNS),
                                ("depth_to_image", "Depth-to-image (Table 2)", IMAGE_COLUMNS)):
        lines += [f"{title}, {metrics[key]['n_images']} held-out images", "",
                  *_markdown_rows(metrics[key]["rows"], columns), ""]
        if "rows_minmax" in metrics[key]:
            lines += [f"{title}, ground truth {metrics[key]['gt_normalization']['rows_minmax']}", "",
                      *_markdown_rows(metrics[key]["rows_minmax"], columns), ""]
    if "animation" in metrics:
        video = metrics["animation"]
        lines += [f"Animation (Table 3, self reenactment), {video['n_clips']} held-out clips of "
                  f"{video['frames_per_clip']} frames, same model and seeds", "",
                  *_markdown_rows(video["rows"], VIDEO_COLUMNS, ["L1", "SSIM", "seam score", "change at boundaries",
                                                                  "change inside clips"]), ""]
        motion = video.get("facial_motion", {})
        if "rows" in motion:
            lines += ["Expression and pose error (tracker fits)", "",
                      *_markdown_rows(_motion_rows(motion), (*MOTION_COLUMNS, ("compared", "")),
                                      ["expression error", "pose error (deg)", "frames compared"]), ""]
        elif "not_computed" in motion:
            lines += [f"Expression and pose error: not computed ({motion['not_computed']})", ""]
    lines.append(SEED_NOTE)
    return "\n".join(lines)


def _animation_section(metrics: dict, figures: dict[str, str]) -> str:
    """Stage 3: the animation of a held-out clip and Table 3's figures, motion frames against independent clips."""
    if "animation" not in metrics:
        return ""
    video = metrics["animation"]
    wins = f"{video['seam_wins']} of {video['n_animations']}"
    return f"""<h2>Animation (paper Table 3, Sec. 5.5)</h2>
<p>Stage 3 trained motion modules on the stage-2 model with synthetic clips of known depth, then animated
held-out clips clip by clip. Columns of the animation: driving depth, ground truth, ours with motion frames
(each clip sees the last frames of the one before), ours as independent clips (every clip starts afresh from the
reference), the same model and noise.</p>
<img src="{figures['animation']}" alt="animation of a held-out clip">
<p class="note">{html.escape(video['sampling'])}. {html.escape(video['not_computed'])}.</p>
{_table(video['rows'], VIDEO_COLUMNS)}
<p class="note">Seam score: mean frame-to-frame change at clip boundaries over the mean change inside clips
(1 = a boundary looks like any other step). Motion frames gave the lower seam score in {wins} animations.</p>
{_motion_section(video.get("facial_motion", {}))}"""


def _motion_section(motion: dict) -> str:
    """Table 3's expression and pose error, with the no-motion baseline and the tracker's own error."""
    if "rows" not in motion:
        text = motion.get("not_computed", "not computed")
        return f'<p class="note">Expression and pose error: {html.escape(text)}.</p>'
    return f"""<h3>Expression and pose error</h3>
<p class="note">{html.escape(motion['protocol'])}.</p>
{_table(_motion_rows(motion), (*MOTION_COLUMNS, ("compared", "frames compared")))}
<p class="note">Only frames where the detector found a face in both the generated and the ground-truth frame
are compared (last column): where it finds few generated faces, the errors rest on those few. An animation
that follows its driving depth should sit well below "reference held still"; the last row is how well the
tracker reads expression and pose from frames of this size at all.</p>"""


def write_report(out: Path, metrics: dict, figures: dict[str, str], config: dict) -> Path:
    timings = "".join(f"<li>{html.escape(k)}: {v:.0f} s</li>" for k, v in metrics["timings_s"].items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jointportrait demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{image-rendering:pixelated;max-width:100%}}
.note{{color:#555;font-size:90%}}</style></head><body>
<h1>jointportrait: joint depth and appearance, end to end</h1>
<p>Face model: <b>{html.escape(metrics['face_model'])}</b>. Everything below was produced on this machine by
<code>jointportrait demo</code>: synthetic studio data, the joint model (stage 1, then the inpainting
fine-tune) and the separate "w/o joint learning" networks, all started from the small pretrained base shipped
with the package (a Stable Diffusion 1.5 stand-in trained on faces), and their evaluation on held-out subjects.
These are small models fine-tuned for minutes at {config['size']}&times;{config['size']} px; compare rows with
each other, not with the paper.</p>
<p class="note">{html.escape(SEED_NOTE)}</p>
<h2>Depth estimation (paper Table 1)</h2>
<p class="note">{html.escape(metrics['depth_estimation']['alignment'])} over the {html.escape(metrics['depth_estimation']['mask'])};
per image, then averaged over {metrics['depth_estimation']['n_images']} held-out images;
{html.escape(metrics['depth_estimation']['sampling'])}.</p>
<p class="note">Against the ground truth {html.escape(metrics['depth_estimation']['gt_normalization']['rows'])}, in the data's unit:</p>
{_table(metrics['depth_estimation']['rows'], DEPTH_COLUMNS)}
<p class="note">Against the ground truth {html.escape(metrics['depth_estimation']['gt_normalization']['rows_minmax'])}: the
scale of the paper's Table 1 (docs/EVALUATION.md explains why its figures imply this normalisation):</p>
{_table(metrics['depth_estimation']['rows_minmax'], DEPTH_COLUMNS)}
<p>Columns: input, ground-truth depth, then for ours, w/o joint learning and the trivial prior: aligned depth and
relative error over the evaluation mask (0, blue, to 3 % or more, dark red).</p>
<img src="{figures['depth_estimation']}" alt="depth estimation grid">
<h2>Depth-to-image (paper Table 2)</h2>
<p class="note">{html.escape(metrics['depth_to_image']['sampling'])}. {html.escape(metrics['depth_to_image']['not_computed'])}.</p>
{_table(metrics['depth_to_image']['rows'], IMAGE_COLUMNS)}
<p>Columns: reference (another frame of the subject), input depth, ground-truth photo, ours, w/o joint learning.</p>
<img src="{figures['depth_to_image']}" alt="depth-to-image grid">
<h2>Joint generation</h2>
<p>Reference, then four RGB samples and their depths from one call (masks 1 / 1).</p>
<img src="{figures['joint_generation']}" alt="joint samples">
<h2>Relighting from the estimated depth</h2>
<p>Photo, normals from the estimated depth, diffuse shading of a new light, relit photo.</p>
<img src="{figures['relighting']}" alt="relighting">
{_animation_section(metrics, figures)}
<h2>Run</h2><ul>{timings}</ul>
<pre class="note">{html.escape(json.dumps(config, indent=1))}</pre>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    return path
