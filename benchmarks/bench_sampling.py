"""Joint sampling overhead (issue: joint denoiser) and the SD 1.5-size widened UNet on this machine.

Measures, in one run on one tiny-but-not-trivial config:
- an N-step ``JointPortraitPipeline`` call (``output_type="latent"``, so no VAE
  decode) against N plain forwards of the same 8-channel UNet (stock diffusers
  attention, no reference tokens) plus one ReferenceNet pass; guidance off;
- the same with classifier-free guidance against N batch-2 forwards (2N sample
  forwards) plus one ReferenceNet pass.
The ratio is the cost of reference attention and of the pipeline itself.
Target: at most 1.15. Then the parameter count and one forward time of the SD
1.5-size widened UNet (8 in / 8 out channels, 64x64 latent, fp32 and bf16).

Run: ``python benchmarks/bench_sampling.py [--skip-sd]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.report import timeit, update_section
from jointportrait import JointPortraitPipeline, widen_unet
from jointportrait.models import JointDenoiser, install_reference_attention

STEPS = 10
SIZE = 256  # pixels; 32x32 latents


def bench_config() -> dict:
    torch.manual_seed(0)
    # SD 1.5's layout with its widths divided by 5 (SD: 320, 640, 1280, 1280; attention at the top three
    # levels; two layers per block; 8 heads), at 32x32 latents: the same shape of cost, 1/25 of the FLOPs.
    unet = UNet2DConditionModel(
        sample_size=SIZE // 8, in_channels=4, out_channels=4, block_out_channels=(64, 128, 256, 256),
        layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=256, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64), layers_per_block=1, latent_channels=4, norm_num_groups=8,
    )
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    return {"unet": unet, "vae": vae, "scheduler": scheduler}


def sampling_ratios() -> tuple[str, dict]:
    base = bench_config()
    pipe = JointPortraitPipeline(vae=base["vae"], unet=widen_unet(base["unet"], 8, 8),
                                 reference_unet=copy.deepcopy(base["unet"]), scheduler=base["scheduler"])
    pipe.set_progress_bar_config(disable=True)
    plain = copy.deepcopy(pipe.unet)
    plain.set_attn_processor(AttnProcessor2_0())
    ref_unet = copy.deepcopy(pipe.reference_unet)
    ref_unet.set_attn_processor(AttnProcessor2_0())
    h = SIZE // 8
    reference = np.random.default_rng(0).uniform(0, 1, (SIZE, SIZE, 3)).astype(np.float32)
    ehs = torch.zeros(1, 1, 256)

    def baseline(batch: int) -> None:
        with torch.no_grad():
            ref_unet(torch.randn(1, 4, h, h), 0, encoder_hidden_states=ehs)
            x = torch.randn(batch, 8, h, h)
            for t in range(STEPS):
                plain(x, 999 - 100 * t, encoder_hidden_states=ehs.expand(batch, -1, -1))

    def joint(guidance: float) -> None:
        pipe(reference, num_inference_steps=STEPS, guidance_scale=guidance, height=SIZE, width=SIZE,
             output_type="latent", generator=torch.Generator().manual_seed(0))

    rows = []
    figures = {}
    for label, guidance, batch in (("guidance off", 1.0, 1), ("guidance 2.5 (2N forwards)", 2.5, 2)):
        # interleave to share the machine's noise between both sides
        t_base, t_joint = [], []
        for _ in range(5):
            t_base.append(timeit(lambda b=batch: baseline(b), repeats=1, warmup=0))
            t_joint.append(timeit(lambda g=guidance: joint(g), repeats=1, warmup=0))
        tb, tj = float(np.median(t_base)), float(np.median(t_joint))
        figures[label] = tj / tb
        rows.append(f"| {label} | {tb:.3f} | {tj:.3f} | **{tj / tb:.3f}** |")
    md = "\n".join([
        f"## Joint sampling vs plain UNet forwards ({STEPS} steps, {SIZE}x{SIZE}, SD 1.5 layout at 1/5 width)",
        "",
        "Baseline: N forwards of the same 8-channel UNet with stock attention + one ReferenceNet pass.",
        "Joint: one `JointPortraitPipeline` call (reference VAE encode, ReferenceNet once, N steps with",
        "reference attention, `output_type=\"latent\"`). Target ratio <= 1.15. Medians of 5 interleaved runs.",
        "",
        "| setting | baseline (s) | joint call (s) | ratio |",
        "| --- | --- | --- | --- |",
        *rows,
    ])
    return md, figures


def sd15_forward() -> str:
    torch.manual_seed(0)
    base = UNet2DConditionModel(cross_attention_dim=768).eval()
    unet = widen_unet(base, 8, 8).eval()
    params = sum(p.numel() for p in unet.parameters())
    x = torch.randn(1, 8, 64, 64)
    ehs = torch.randn(1, 1, 768)
    # One denoising step with reference attention vs the same UNet with stock attention.
    joint = JointDenoiser(unet, base)
    with torch.no_grad():
        bank = joint.encode_reference(torch.randn(1, 4, 64, 64), ehs)
        t_ref, t_plain = [], []
        for _ in range(2):
            install_reference_attention(base, unet)
            t_ref.append(timeit(lambda: joint(x, 500, ehs, reference_bank=bank), repeats=1, warmup=0))
            unet.set_attn_processor(AttnProcessor2_0())
            t_plain.append(timeit(lambda: unet(x, 500, encoder_hidden_states=ehs), repeats=1, warmup=0))
    step_ratio = min(t_ref) / min(t_plain)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        unet.to(dtype)
        with torch.no_grad():
            start = time.perf_counter()
            unet(x.to(dtype), 500, encoder_hidden_states=ehs.to(dtype))
            first = time.perf_counter() - start
            t = timeit(lambda d=dtype: unet(x.to(d), 500, encoder_hidden_states=ehs.to(d)), repeats=2, warmup=0)
        rows.append(f"| {str(dtype).replace('torch.', '')} | {first:.2f} | {t:.2f} |")
    return "\n".join([
        "## SD 1.5-size widened UNet (8 in / 8 out channels), batch 1, 64x64 latent (512 px)",
        "",
        f"Parameters: **{params:,}** (the 4-channel SD 1.5 UNet has 859,520,964; widening adds "
        f"{params - 859_520_964:,}).",
        "",
        "One denoising step with reference attention (ReferenceNet features at 64x64) against the same",
        f"UNet with stock attention, fp32: {min(t_ref):.2f} s vs {min(t_plain):.2f} s, ratio **{step_ratio:.3f}**",
        "(best of 2 each; the reference pass itself runs once per sampling call, not per step).",
        "",
        "| dtype | first forward (s) | forward, median (s) |",
        "| --- | --- | --- |",
        *rows,
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-sd", action="store_true", help="skip the SD 1.5-size forward (needs ~8 GB RAM)")
    args = parser.parse_args(argv or [])
    md, figures = sampling_ratios()
    print(md)
    if not args.skip_sd:
        sd = sd15_forward()
        print(sd)
        md = md + "\n\n" + sd
    update_section("sampling", md)


if __name__ == "__main__":
    main(sys.argv[1:])
