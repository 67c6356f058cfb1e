"""Fingerprints of fixed-seed outputs, to show that a refactoring changes no byte of what the tool writes.

Runs, with the installed ``jointportrait`` command and fixed seeds: ``synth`` (a tiny set), a 12-step
tiny stage-1 training run (with validation and checkpoints), a stage-2 run from it, a short
"w/o joint learning" and "w/o ReferenceNet" run, ``generate``, ``estimate-depth`` (18- and
8-channel models, with an ensemble), ``depth-to-image``, ``edit``, ``relight``, ``export`` and the
quick demo. Every output file is hashed (SHA-256), except files that hold times or absolute paths
(logs, TensorBoard events, ``config.yaml``, the demo's timings).

    python scripts/fingerprint_outputs.py --work /tmp/fp_new --out /tmp/fp_new.json \
        --face-model ../shared/face_model/ict_face_model_light.npz [--compare /tmp/fp_old.json]

To compare two commits, run it in a checkout (``git worktree add``) of each with its own
environment, or run the old one first and ``--compare`` against its JSON. Exit status 1 when
``--compare`` finds a difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SKIP_NAMES = {"config.yaml", "run.json", "index.html"}
SKIP_PARTS = {"logs", "validation_logs"}


def _cli(*args: str) -> None:
    command = [sys.executable, "-m", "jointportrait.cli.main", *args]
    env = dict(os.environ, PYTHONHASHSEED="0")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{result.stdout}\n{result.stderr}")


def _hash_file(path: Path) -> str:
    if path.name == "metrics.json":  # the demo's metrics: drop wall times
        data = json.loads(path.read_text())
        data.pop("timings_s", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    if path.suffix == ".json" and path.parent.name != "params":  # model configs: drop the source path
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "_name_or_path" in data:
            data.pop("_name_or_path")
            return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprints(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.name in SKIP_NAMES or SKIP_PARTS & set(rel.parts):
            continue
        if path.name.startswith("events.out.tfevents") or path.suffix in {".log", ".pkl", ".bin"}:
            continue  # times, pickled RNG/optimizer states (byte layout of pickle, not our output)
        out[str(rel)] = _hash_file(path)
    return out


def _write_mask(path: Path, like: Path) -> None:
    """A white box over the upper-middle of the image (the edited region)."""
    import numpy as np
    from PIL import Image

    with Image.open(like) as img:
        w, h = img.size
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: h // 2, w // 4: 3 * w // 4] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)


def run_all(work: Path, face_model: str) -> None:
    data = work / "data"
    _cli("synth", "--out", str(data), "--subjects", "4", "--frames-per-subject", "3", "--size", "64",
         "--seed", "0", "--face-model", face_model)
    s1, s2 = work / "runs" / "s1", work / "runs" / "s2"
    _cli("train", "--config", "configs/train/tiny_stage1.yaml", "--output-dir", str(s1),
         "--set", f"data.root={data}", "--set", "train.max_steps=12", "--set", "validation.every=6",
         "--set", "train.checkpoint_every=6")
    _cli("train", "--config", "configs/train/tiny_stage2.yaml", "--output-dir", str(s2),
         "--set", f"data.root={data}", "--set", f"model.init_from={s1}", "--set", "train.max_steps=4",
         "--set", "validation.every=4")
    _cli("train", "--config", "configs/train/tiny_vae.yaml", "--output-dir", str(work / "runs" / "vae"),
         "--set", f"data.root={data}", "--set", "train.max_steps=3", "--set", "validation.every=0")
    for kind in ("image_to_depth", "concat_reference"):
        _cli("train", "--config", "configs/train/tiny_stage1.yaml", "--output-dir", str(work / "runs" / kind),
             "--set", f"data.root={data}", "--set", f"model.kind={kind}", "--set", "train.max_steps=3",
             "--set", "validation.every=0")
    image = sorted((data / "images").rglob("*.png"))[0] if (data / "images").exists() else None
    if image is None:
        image = sorted(p for p in data.rglob("*.png") if "rgb" in p.name or "image" in p.parent.name)[0]
    apps = work / "apps"
    m1, m2 = s1 / "final", s2 / "final"
    _cli("generate", "--model", str(m2), "--reference", str(image), "--out", str(apps / "generate"),
         "--num-samples", "2", "--steps", "3", "--guidance-scale", "2.0", "--seed", "1")
    _cli("estimate-depth", "--model", str(m2), "--image", str(image), "--out", str(apps / "depth18"),
         "--steps", "2", "--ensemble", "3", "--seed", "2")
    _cli("estimate-depth", "--model", str(m1), "--image", str(image), "--out", str(apps / "depth8"),
         "--steps", "2", "--seed", "3")
    depth = apps / "depth18" / f"{image.stem}_depth.npy"
    _cli("depth-to-image", "--model", str(m2), "--depth", str(depth), "--reference", str(image),
         "--out", str(apps / "d2i"), "--steps", "3", "--num-samples", "2", "--seed", "4")
    mask = apps / "mask.png"
    _write_mask(mask, image)
    _cli("edit", "--model", str(m2), "--image", str(image), "--edited-depth", str(depth), "--mask", str(mask),
         "--out", str(apps / "edit"), "--steps", "3", "--seed", "5")
    _cli("relight", "--image", str(image), "--depth", str(depth), "--light=-1,1,1", "--out", str(apps / "relight"))
    _cli("export", "--image", str(image), "--depth", str(depth), "--out", str(apps / "export"))
    _cli("export", "--image", str(image), "--depth", str(depth), "--out", str(apps / "export_mesh"), "--mesh",
         "--format", "glb")
    _cli("demo", "--quick", "--out", str(work / "demo"), "--face-model", face_model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of fingerprints to write")
    parser.add_argument("--face-model", required=True, help="face model .npz for synth and the demo")
    parser.add_argument("--compare", type=Path, default=None, help="fingerprints JSON of the other commit")
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    run_all(args.work, str(Path(args.face_model).resolve()))
    prints = fingerprints(args.work)
    args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    print(f"{len(prints)} files fingerprinted -> {args.out}")
    if args.compare is None:
        return 0
    other = json.loads(args.compare.read_text())
    differ = sorted(k for k in set(prints) | set(other) if prints.get(k) != other.get(k))
    for name in differ:
        print(f"DIFFERS: {name} ({'missing here' if name not in prints else 'missing there' if name not in other else 'bytes'})")
    print(f"{len(differ)} of {len(set(prints) | set(other))} files differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
