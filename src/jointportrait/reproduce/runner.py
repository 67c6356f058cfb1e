"""``jointportrait reproduce``: the whole miniature protocol, resumable (issue 16).

Order of work: the data (studio, wild with tracked pseudo ground truth), the
identity network, then seed by seed every method (train, evaluate), so that an
interrupted run already holds complete comparisons for its first seeds. Every
finished piece is kept on disk (datasets, ``runs/.../final``, ``eval/*.json``);
running the command again on the same folder continues where it stopped. The
protocol is frozen into ``OUT/protocol.json`` at the first run; a later run with
other settings is refused.

Writes ``OUT/results.json`` (every method and seed, the trivial baselines, the
summary and the differences), ``OUT/tables.md`` and the figures
(``OUT/figures/<method>.png``, ``fig9_studio.png``, ``fig9_wild.png``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from jointportrait.data.datasets import FrameDataset
from jointportrait.errors import InputError
from jointportrait.face_models import load_face_model
from jointportrait.reproduce.data import make_studio, make_wild
from jointportrait.reproduce.evaluate import evaluate_method, load_test_sets, trivial_baselines
from jointportrait.reproduce.identity import IdentityNet, train_identity_net
from jointportrait.reproduce.protocol import METHODS, ProtocolConfig
from jointportrait.reproduce.report import (
    differences,
    identity_figure,
    markdown_differences,
    markdown_tables,
    method_sheet,
    summarize,
)
from jointportrait.reproduce.training import train_method

logger = logging.getLogger(__name__)


def _freeze_protocol(out: Path, cfg: ProtocolConfig) -> None:
    frozen = json.loads(json.dumps(asdict(cfg)))
    path = out / "protocol.json"
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in frozen if k not in ("seeds", "device") and before.get(k) != frozen[k])
        if changed:
            raise InputError(f"{out} holds a run of another protocol ({', '.join(changed)} differ); use a new --out")
        frozen["seeds"] = max(frozen["seeds"], before.get("seeds", 0))
    path.write_text(json.dumps(frozen, indent=2) + "\n")


def _identity_net(out: Path, studio: Path, cfg: ProtocolConfig) -> IdentityNet:
    """The identity network, trained once on the studio training subjects (cached in ``OUT/identity_net.pt``)."""
    train = FrameDataset(studio, size=cfg.data.size, split="train", seed=0)
    subjects = [r.subject for r in train.records]
    path = out / "identity_net.pt"
    if path.exists():
        net = IdentityNet(len(set(subjects)))
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    images = torch.stack([train[i]["image"] for i in range(len(train))])  # (N, 3, H, W)
    net = train_identity_net(images, subjects, cfg.identity_steps)
    torch.save(net.state_dict(), path)
    return net


def _model_dirs(method: str, trained: dict[str, dict]) -> dict[str, Path]:
    if method == "separate":
        return {k: Path(trained[k]["dir"]) for k in ("image_to_depth", "depth_to_image")}
    last = list(trained)[-1]  # the joint model's stage 2, or the concat model
    return {"joint": Path(trained[last]["dir"])}


def run_protocol(out: Path, cfg: ProtocolConfig, say=logger.info, face_model: str | Path | None = None) -> dict:
    """Run (or continue) the protocol into ``out``; returns the content of ``results.json``.

    ``face_model``: the morphable model of the data and the tracker (a registered name or a path; default:
    the ICT model shipped with the package)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _freeze_protocol(out, cfg)
    timings: dict[str, float] = {}
    face = load_face_model(face_model)
    say(f"face model: {face.name} ({face.source})")

    t = time.perf_counter()
    say("[1] data: studio set, wild clips through the camera model, tracked pseudo ground truth")
    studio = make_studio(out / "data", face, cfg.data)
    wild, wild_test, tracking = make_wild(out / "data", face, cfg.data)
    timings["data"] = round(time.perf_counter() - t, 1)
    say(f"    wild pseudo ground truth: AbsRel {tracking['pseudo_gt_abs_rel']} against the rendered depth "
        f"({tracking['clips_tracked']} clips, {tracking['clips_diverged']} diverged)")

    t = time.perf_counter()
    identity_net = _identity_net(out, studio, cfg)
    tests = load_test_sets(studio, wild_test, cfg)
    trivial = trivial_baselines(tests, identity_net)
    timings["identity_net_and_tests"] = round(time.perf_counter() - t, 1)

    sources = {"studio": studio, "wild": wild}
    per_seed: dict[str, dict[int, dict]] = {m: {} for m in METHODS}
    training: dict[str, dict[int, dict]] = {m: {} for m in METHODS}
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    (out / "eval").mkdir(exist_ok=True)
    for seed in range(cfg.seeds):
        for method in METHODS:
            say(f"[seed {seed}] {method}")
            trained = train_method(method, seed, cfg, sources, out, say=say)
            training[method][seed] = trained
            cached = out / "eval" / f"{method}_seed{seed}.json"
            if cached.exists():
                per_seed[method][seed] = json.loads(cached.read_text())
                continue
            t = time.perf_counter()
            metrics, sheet = evaluate_method(method, _model_dirs(method, trained), tests, cfg, identity_net)
            metrics["eval_seconds"] = round(time.perf_counter() - t, 1)
            cached.write_text(json.dumps(metrics, indent=2) + "\n")
            per_seed[method][seed] = metrics
            if seed == 0:
                method_sheet(figures / f"{method}.png", tests.studio, sheet)
                np.savez(figures / f"{method}_fig9.npz", **{k: np.stack([s[0][0] for s in v])
                                                            for k, v in sheet.items() if k.startswith("joint_")})

    summary = summarize(per_seed)
    diffs = differences(summary)
    for name in ("studio", "wild"):
        sheets = {}
        for method in METHODS:
            npz = figures / f"{method}_fig9.npz"
            if npz.exists() and f"joint_{name}" in np.load(npz):
                sheets[method] = {f"joint_{name}": [(a[None],) for a in np.load(npz)[f"joint_{name}"]]}
        if sheets:
            identity_figure(figures / f"fig9_{name}.png", tests.identity_refs[name], sheets, f"joint_{name}")
    results = {"protocol": json.loads((out / "protocol.json").read_text()), "face_model": face.name,
               "tracking": tracking, "methods": per_seed, "training": training, "trivial": trivial,
               "summary": summary, "differences": diffs, "timings_s": timings,
               "figure_columns": {"fig9": ["reference"] + [m for m in METHODS if m != "separate"],
                                  "method": ["photo", "true depth", "estimated depth", "image from true depth",
                                             "reference", "joint sample", "its depth"]}}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "tables.md").write_text(markdown_tables(summary, trivial, cfg.seeds) + "\n" + markdown_differences(diffs))
    return results
