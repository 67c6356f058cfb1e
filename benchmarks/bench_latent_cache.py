"""Training-step time of the demo's models with and without ``data.cache_latents``.

The trainer's own pieces (dataset, ``DataLoader``, the training stage's batch
preparation and loss, AdamW) on a synthetic set written by ``jointportrait synth``, at the
demo's sizes: 32 px images, a 3-level VAE (8x8 latents), the tiny UNet, batch
32. "Uncached" reads and crops the PNG/NPY files and encodes with the VAE every
step, as a plain run does; "cached" serves items and latents from memory. The
ratio is cached / uncached time per step, measured in the same run, interleaved.

    python benchmarks/bench_latent_cache.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SIZE, BATCH, STEPS = 32, 32, 6
KINDS = (("stage 1 (joint, 8 ch)", "joint", 8), ("stage 2 (joint, 18 ch, masks)", "joint", 18),
         ("w/o joint learning: image -> depth", "image_to_depth", 8))


def _setup(root: Path, vae: Path, kind: str, in_channels: int, cache: bool):
    from torch.utils.data import DataLoader

    from jointportrait.training.config import config_from_dict
    from jointportrait.training.data import StepBatchSampler, build_datasets
    from jointportrait.training.latent_cache import cache_latents
    from jointportrait.training.stages import STAGES

    cfg = config_from_dict({"model": {"kind": kind, "base": "tiny", "in_channels": in_channels, "vae": str(vae),
                                      "prediction_type": "v_prediction"},
                            "data": {"root": str(root), "resolution": SIZE}})
    stage = STAGES[kind](cfg)
    stage.prepare(torch.device("cpu"), torch.float32)
    model = stage.model
    dataset = build_datasets(cfg.dataset_sources(), SIZE, "train")
    start = time.perf_counter()
    if cache:
        dataset = cache_latents(dataset, stage.latent_vae)
    build_s = time.perf_counter() - start
    loader = iter(DataLoader(dataset, batch_sampler=StepBatchSampler(len(dataset), BATCH, seed=0, draws=True)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    counter = iter(range(10**9))

    def step() -> None:
        batch = next(loader)
        generator = torch.Generator().manual_seed(next(counter))
        out = stage.loss(model, stage.prepare_batch(batch, generator), generator)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, build_s, len(dataset)


def measure(root: Path, vae: Path) -> list[dict]:
    rows = []
    for label, kind, channels in KINDS:
        plain, _, n = _setup(root, vae, kind, channels, cache=False)
        cached, build_s, _ = _setup(root, vae, kind, channels, cache=True)
        plain(), cached()  # warm-up
        t_plain, t_cached = [], []
        for _ in range(STEPS):  # interleaved, so that load from elsewhere hits both alike
            for fn, times in ((plain, t_plain), (cached, t_cached)):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        rows.append({"label": label, "plain_s": statistics.median(t_plain), "cached_s": statistics.median(t_cached),
                     "ratio": statistics.median(c / p for c, p in zip(t_cached, t_plain)), "build_s": build_s,
                     "items": n})
    return rows


def main() -> None:
    from benchmarks.report import update_section
    from jointportrait.cli.main import main as cli
    from jointportrait.training.vae_stage import tiny_vae

    with tempfile.TemporaryDirectory() as tmp:
        root, vae = Path(tmp) / "data", Path(tmp) / "vae"
        if cli(["synth", "--out", str(root), "--subjects", "24", "--frames-per-subject", "3", "--size", str(SIZE)]):
            raise SystemExit("synth failed")
        tiny_vae(levels=3, sample_size=SIZE).save_pretrained(vae)  # the demo's VAE layout (8x8 latents)
        torch.set_num_threads(2)  # the demo's setting: all of a 2-core machine (synth set its own)
        rows = measure(root, vae)
    lines = [f"| {r['label']} | {r['plain_s'] * 1000:.0f} ms | {r['cached_s'] * 1000:.0f} ms | **{r['ratio']:.2f}** "
             f"| {BATCH / r['cached_s']:.0f} |" for r in rows]
    for r in rows:
        print(f"{r['label']}: uncached {r['plain_s'] * 1000:.0f} ms, cached {r['cached_s'] * 1000:.0f} ms, "
              f"ratio {r['ratio']:.2f}")
    update_section("latent_cache", f"""## Training step with `data.cache_latents` (the demo's setting)

Tiny UNet (32, 64), 3-level tiny VAE, {SIZE} px images (8x8 latents), batch {BATCH}, v-prediction, fp32;
one optimizer step including data loading, median of {STEPS} interleaved steps
(`benchmarks/bench_latent_cache.py`). Uncached: files read and VAE-encoded every step. Cached: the set
({rows[0]['items']} items) and its latents in memory, built once in {rows[0]['build_s']:.1f} s.

| step | uncached | cached | cached / uncached | samples/s cached |
|---|---|---|---|---|
{chr(10).join(lines)}
""")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
