"""Joint sampling against plain UNet forwards, the floor reference attention sets, and the denoiser's modes.

Measured in one run, interleaved (one of each per round), on one config with SD 1.5's layout at
1/5 of its widths (``bench_config``):

- an N-step ``JointPortraitPipeline`` call (``output_type="latent"``) against N forwards of the
  same 8-channel UNet with diffusers' stock attention plus one ReferenceNet pass; guidance off,
  and guidance on (2N sample forwards);
- the floor of that ratio: the baseline plus the time the reference tokens add to the attention
  kernels (every kernel call of the joint call timed alone with and without the reference keys;
  :func:`benchmarks.profiling.attention_extra`) plus the VAE encoding of the reference, which
  the joint call needs and the baseline does not do;
- where the time goes, by module (CPU time from forward hooks), joint call against baseline;
- the joint call in fp32 (1.00) against channels-last weights, bf16 autocast, bf16 weights and
  ``torch.compile`` of the denoiser (its compile time reported);
- optionally (``--sd``) the same ratio and floor for one denoising step of the full SD 1.5-size
  widened UNet.

On a CPU every time is this process's CPU time with one torch thread (the machine is shared:
wall time would count waiting for a core). Medians over rounds; the spread is half the
interquartile range of the per-round values, relative to their median.

Run: ``python benchmarks/bench_sampling.py [--rounds 5] [--sd] [--sd-latent 32] [--no-compile]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.profiling import (
    attention_extra,
    interleaved,
    measure,
    median_spread,
    module_times,
    ratio_stats,
    record_attention_shapes,
)
from benchmarks.report import update_section
from jointportrait import JointPortraitPipeline, widen_unet
from jointportrait.latent_codec import encode_rgb
from jointportrait.models import JointDenoiser

STEPS = 10
SIZE = 256  # pixels; 32x32 latents


def reference_tokens(q_shape: tuple, k_shape: tuple) -> int:
    """Reference keys of an SDPA call: a reader attends over [own, reference], the reference as large as its own."""
    return k_shape[2] - q_shape[2] if k_shape[2] == 2 * q_shape[2] else 0


def fmt(median: float, spread: float, digits: int = 2) -> str:
    return f"{median:.{digits}f} ± {median * spread:.{digits}f}"


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


class Setup:
    """The joint pipeline and the baseline's plain UNets, built from the same weights."""

    def __init__(self, device: str) -> None:
        base = bench_config()
        self.device = device
        self.pipe = JointPortraitPipeline(vae=base["vae"], unet=widen_unet(base["unet"], 8, 8),
                                          reference_unet=copy.deepcopy(base["unet"]),
                                          scheduler=base["scheduler"]).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.plain = copy.deepcopy(self.pipe.unet)
        self.plain.set_attn_processor(AttnProcessor2_0())
        self.ref_plain = copy.deepcopy(self.pipe.reference_unet)
        self.ref_plain.set_attn_processor(AttnProcessor2_0())
        self.reference = np.random.default_rng(0).uniform(0, 1, (SIZE, SIZE, 3)).astype(np.float32)
        self.ehs = torch.zeros(1, 1, 256, device=device)

    def baseline(self, batch: int):
        h = SIZE // 8

        def run() -> None:
            with torch.no_grad():
                self.ref_plain(torch.randn(1, 4, h, h, device=self.device), 0, encoder_hidden_states=self.ehs)
                x = torch.randn(batch, 8, h, h, device=self.device)
                for t in range(STEPS):
                    self.plain(x, 999 - 100 * t, encoder_hidden_states=self.ehs.expand(batch, -1, -1))
        return run

    def joint(self, guidance: float, pipe: JointPortraitPipeline | None = None, autocast: bool = False):
        pipe = pipe or self.pipe

        def run() -> None:
            with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=autocast):
                pipe(self.reference, num_inference_steps=STEPS, guidance_scale=guidance, height=SIZE, width=SIZE,
                     output_type="latent", generator=torch.Generator().manual_seed(0))
        return run

    def vae_encode(self):
        image = torch.from_numpy(self.reference).permute(2, 0, 1)[None].to(self.device) * 2 - 1

        def run() -> None:
            with torch.no_grad():
                encode_rgb(self.pipe.vae, image)
        return run


def sampling_ratios(s: Setup, rounds: int) -> tuple[list[str], dict]:
    fns = {"base off": s.baseline(1), "joint off": s.joint(1.0), "base cfg": s.baseline(2), "joint cfg": s.joint(2.5),
           "vae": s.vae_encode()}
    t = interleaved(fns, rounds, s.device)
    rows, figures = [], {}
    for label, key in (("guidance off", "off"), ("guidance 2.5 (2N forwards)", "cfg")):
        with record_attention_shapes() as calls:
            fns[f"joint {key}"]()
        _, extra = attention_extra(calls, reference_tokens, device=s.device)
        base, joint = median_spread(t[f"base {key}"]), median_spread(t[f"joint {key}"])
        vae = float(np.median(t["vae"]))
        ratio = ratio_stats(t[f"joint {key}"], t[f"base {key}"])
        floor = (base[0] + extra + vae) / base[0]
        figures[key] = {"ratio": ratio[0], "floor": floor, "of_floor": ratio[0] / floor}
        rows.append(f"| {label} | {fmt(*base, 3)} | {fmt(*joint, 3)} | **{fmt(*ratio)}** | {extra:.3f} + {vae:.3f} "
                    f"| {floor:.2f} | **{ratio[0] / floor:.3f}** |")
    return rows, figures


def module_rows(s: Setup) -> list[str]:
    roots = {"ReferenceNet": s.pipe.reference_unet, "denoiser": s.pipe.unet, "VAE": s.pipe.vae}
    with module_times(roots, s.device) as joint:
        s.joint(1.0)()
    with module_times({"ReferenceNet": s.ref_plain, "denoiser": s.plain}, s.device) as base:
        s.baseline(1)()
    whole_joint, whole_base = measure(s.joint(1.0), s.device), measure(s.baseline(1), s.device)
    rows = [f"| {k} | {joint.get(k, 0.0):.3f} | {base.get(k, 0.0):.3f} |" for k in sorted(set(joint) | set(base))]
    return rows + [f"| whole call | {whole_joint:.3f} | {whole_base:.3f} |"]


def mode_rows(s: Setup, rounds: int, compile_denoiser: bool) -> list[str]:
    """The joint call (guidance off) in fp32 against other memory formats, precisions and torch.compile."""
    cl = copy.deepcopy(s.pipe)
    cl.enable_channels_last()
    bf16 = copy.deepcopy(s.pipe).to(dtype=torch.bfloat16)
    fns = {"fp32 (eager)": s.joint(1.0), "channels-last weights": s.joint(1.0, cl),
           "bf16 autocast": s.joint(1.0, autocast=True), "bf16 autocast + channels-last": s.joint(1.0, cl, True),
           "bf16 weights (`--dtype bfloat16`)": s.joint(1.0, bf16)}
    compiled_note = ""
    if compile_denoiser:
        comp = copy.deepcopy(s.pipe)
        comp.compile_denoiser()
        first = measure(s.joint(1.0, comp), s.device)
        second = measure(s.joint(1.0, comp), s.device)  # a second call must not compile again
        fns["torch.compile (denoiser)"] = s.joint(1.0, comp)
        compiled_note = (f"torch.compile: first call {first:.1f} s CPU (compilation; the first denoiser call took "
                         f"{comp.joint_denoiser.compile_seconds:.1f} s wall), second call {second:.2f} s.")
    t = interleaved(fns, rounds, s.device)
    ref = t["fp32 (eager)"]
    rows = [f"| {k} | {fmt(*median_spread(v), 3)} | **{fmt(*ratio_stats(v, ref))}** |" for k, v in t.items()]
    return rows + ([] if not compiled_note else ["", compiled_note])


def sd15_step(latent: int, rounds: int, device: str) -> list[str]:
    """One denoising step of the SD 1.5-size widened UNet with reference attention against the same UNet with
    stock attention; the floor from its attention kernels."""
    torch.manual_seed(0)
    base = UNet2DConditionModel(cross_attention_dim=768).eval()
    joint = JointDenoiser(widen_unet(base, 8, 8), base).to(device).eval()  # two SD-size UNets, ~7 GB in fp32
    readers = joint.unet.attn_processors
    params = sum(p.numel() for p in joint.unet.parameters())
    x = torch.randn(1, 8, latent, latent, device=device)
    ehs = torch.randn(1, 1, 768, device=device)
    t500 = torch.tensor([500], device=device)
    with torch.no_grad():
        bank = joint.prepare_for_sampling(joint.encode_reference(torch.randn(1, 4, latent, latent, device=device), ehs))

        def step_joint():
            joint.unet.set_attn_processor(readers)
            with torch.no_grad():
                joint(x, t500, ehs, reference_bank=bank)

        def step_plain():  # the same UNet with diffusers' stock attention
            joint.unet.set_attn_processor(AttnProcessor2_0())
            with torch.no_grad():
                joint.unet(x, t500, encoder_hidden_states=ehs)

        t = interleaved({"joint": step_joint, "plain": step_plain}, rounds, device)
        with record_attention_shapes() as calls:
            step_joint()
    _, extra = attention_extra(calls, reference_tokens, device=device)
    ratio = ratio_stats(t["joint"], t["plain"])
    plain_s = float(np.median(t["plain"]))
    floor = (plain_s + extra) / plain_s
    return [
        f"## SD 1.5-size widened UNet (8 in / 8 out channels), one step, batch 1, {latent}x{latent} latent "
        f"({latent * 8} px)",
        "",
        f"Parameters: **{params:,}** (the 4-channel SD 1.5 UNet has 859,520,964; widening adds "
        f"{params - 859_520_964:,}). One denoising step with reference attention (ReferenceNet features at "
        f"{latent}x{latent}, projected once per call) against the same UNet with stock attention, fp32, "
        f"{rounds} interleaved rounds:",
        "",
        "| step | time (s) | ratio | floor | ratio / floor |",
        "| --- | --- | --- | --- | --- |",
        f"| stock attention | {fmt(*median_spread(t['plain']), 3)} | 1.00 | | |",
        f"| reference attention | {fmt(*median_spread(t['joint']), 3)} | **{fmt(*ratio, 3)}** | {floor:.3f} "
        f"| **{ratio[0] / floor:.3f}** |",
        "",
        f"The reference tokens add {extra:.3f} s to the attention kernels of one step (timed alone).",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sd", action="store_true", help="also one step of the SD 1.5-size UNet (~8 GB RAM)")
    parser.add_argument("--sd-latent", type=int, default=32, help="latent side of the SD 1.5-size step")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it takes minutes)")
    args = parser.parse_args(argv if argv is not None else [])
    if args.device == "cpu":
        torch.set_num_threads(1)
    s = Setup(args.device)
    rows, _ = sampling_ratios(s, args.rounds)
    clock = "CPU time, 1 thread" if args.device == "cpu" else f"synchronised wall time, {args.device}"
    command = "python benchmarks/bench_sampling.py" + (" --sd" if args.sd else "") + \
        (" --no-compile" if args.no_compile else "")
    md = [
        f"## Joint sampling vs plain UNet forwards ({STEPS} steps, {SIZE}x{SIZE}, SD 1.5 layout at 1/5 width)",
        "",
        f"`{command}`; {clock}; medians of {args.rounds} interleaved rounds ± half the interquartile range.",
        "Baseline: N forwards of the same 8-channel UNet with diffusers' stock attention + one ReferenceNet pass.",
        "Joint: one `JointPortraitPipeline` call (reference VAE encode, ReferenceNet once up to its last writer,",
        "reference keys/values projected once, N steps with reference attention, `output_type=\"latent\"`).",
        "Floor: the baseline + what the reference keys add to the attention kernels (each kernel call timed alone,",
        "with and without them) + the reference's VAE encode. Target ratio <= 1.15, or within 5 % of the floor.",
        "",
        "| setting | baseline (s) | joint call (s) | ratio | reference keys + VAE encode (s) | floor | ratio / floor |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Where the time goes (guidance off, CPU time per module kind, inclusive; one call each):",
        "",
        "| module | joint call (s) | baseline (s) |",
        "| --- | --- | --- |",
        *module_rows(s),
        "",
        "The joint call in other modes (guidance off; ratio to fp32 eager):",
        "",
        "| mode | joint call (s) | ratio |",
        "| --- | --- | --- |",
        *mode_rows(s, args.rounds, not args.no_compile),
    ]
    if args.sd:
        md += ["", *sd15_step(args.sd_latent, max(3, args.rounds // 2), args.device)]
    text = "\n".join(md)
    print(text)
    update_section("sampling", text)


if __name__ == "__main__":
    main(sys.argv[1:])
