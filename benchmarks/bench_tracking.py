"""Face tracker speed and accuracy on a synthetic clip (paper Sec. 5.1, supplementary 7.3).

A 25-frame 256x256 clip from the synthetic video generator (``jointportrait
synth --video``, ICT face model when present) with landmarks = projected
landmark vertices + 1.5 px Gaussian noise. Reports seconds per frame of the
full tracker and its ablations (no photometric stage; one identity per frame),
the aligned AbsRel of the tracked depth over the true skin mask and the
landmark error against the noise-free landmarks.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.report import update_section
from jointportrait.data.face_model import default_face_model_path, load_face_model
from jointportrait.data.manifest import read_manifest
from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.tracking import TrackerConfig, track_clip
from jointportrait.tracking.metrics import aligned_abs_rel

FRAMES, SIZE, NOISE_PX, SEED = 25, 256, 1.5, 0


def true_landmarks(model, params: dict) -> np.ndarray:
    """The 68 landmarks (68, 2) in pixels of a synthetic frame, from its stored parameters."""
    identity = torch.tensor(params["identity"], dtype=torch.float32)[None]
    weights = torch.tensor([params["blendshapes"][n] for n in model.blendshape_names], dtype=torch.float32)[None]
    verts = model.vertices(identity=identity, blendshape_weights=weights)[0, model.landmark_indices].double()
    world = verts @ torch.tensor(params["rotation_matrix"]).T + torch.tensor(params["translation_cm"])
    w2c = torch.tensor(params["world_to_camera"])
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]  # (68, 3)
    K = torch.tensor(params["intrinsics"])
    return (cam[:, :2] / cam[:, 2:3] * torch.stack([K[0, 0], K[1, 1]]) + K[:2, 2]).numpy()


def synthetic_clip(model, root: Path) -> dict[str, np.ndarray]:
    write_dataset(root, model, SynthConfig(subjects=1, frames_per_subject=FRAMES, size=SIZE, video=True,
                                           clip_length=FRAMES, seed=SEED))
    records = sorted(read_manifest(root), key=lambda r: r.frame)
    clean = np.stack([true_landmarks(model, json.loads((root / r.extra["params"]).read_text())) for r in records])
    rng = np.random.default_rng(SEED)
    return {
        "frames": np.stack([np.asarray(Image.open(r.image).convert("RGB")) for r in records]),
        "depth": np.stack([np.load(r.depth) for r in records]),
        "skin": np.stack([np.asarray(Image.open(r.skin_mask)) > 127 for r in records]),
        "clean": clean,
        "landmarks": (clean + rng.normal(size=clean.shape) * NOISE_PX * SIZE / 256).astype(np.float32),
    }


def evaluate(clip: dict, result) -> tuple[float, float]:
    valid = clip["skin"] & result.mask & (clip["depth"] > 0)
    abs_rel = float(np.mean([aligned_abs_rel(result.depth[f], clip["depth"][f], valid[f]) for f in range(FRAMES)]))
    return abs_rel, float(np.linalg.norm(result.fitted_landmarks - clip["clean"], axis=-1).mean())


def main() -> None:
    model = load_face_model(default_face_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic_clip(model, Path(tmp))
    rows = []
    for name, config in (("full tracker", TrackerConfig()), ("no photometric stage", TrackerConfig(photometric=False)),
                         ("one identity per frame", TrackerConfig(shared_identity=False))):
        start = time.perf_counter()
        result = track_clip(model, clip["frames"], clip["landmarks"], config)
        seconds = time.perf_counter() - start
        abs_rel, lmk = evaluate(clip, result)
        rows.append((name, seconds, abs_rel, lmk, result.diverged))
        print(f"{name}: {seconds / FRAMES:.2f} s/frame, AbsRel {abs_rel:.4f}, landmark error {lmk:.2f} px")
    base = rows[0][1]
    table = "\n".join(f"| {n} | {s / FRAMES:.2f} | {s / base:.2f} | {a:.4f} | {e:.2f} | {d or 'no'} |"
                      for n, s, a, e, d in rows)
    update_section("tracking", f"""## Face tracking (`jointportrait track`)

{FRAMES}-frame {SIZE}x{SIZE} clip from the synthetic video generator ({model.name}), landmarks with
{NOISE_PX} px Gaussian noise. AbsRel: tracked depth vs. true depth after a least-squares scale and shift,
over the true skin mask; landmark error: fitted vs. noise-free landmarks.

| variant | s / frame | time vs. full | aligned AbsRel | landmark error (px) | diverged |
| --- | --- | --- | --- | --- | --- |
{table}
""")


if __name__ == "__main__":
    main()
