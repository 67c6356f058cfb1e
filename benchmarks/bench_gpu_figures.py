"""The absolute figures issue 17 asks for where a GPU is lent: ms per 512 x 512 depth estimate at one step and
per joint sample at 20 steps (bf16 weights), stage-1 training samples per second and MFU at 512 px (bf16
autocast). SD 1.5-size models with random weights (speed does not depend on the weights).

MFU = (model FLOPs of one training step, counted by ``torch.utils.flop_counter`` on the step itself) x
steps per second / the device's peak dense bf16 FLOP/s (``--peak-tflops``; e.g. 989 for an H100/H200 SXM).

    python benchmarks/bench_gpu_figures.py --device cuda --peak-tflops 989
    python benchmarks/bench_gpu_figures.py --device cpu --size small --resolution 64   # checks the code path

Only a GPU run writes BENCHMARKS.md (section ``gpu``); elsewhere the figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_depth_estimation import SIZES
from benchmarks.profiling import measure
from benchmarks.report import update_section
from jointportrait import JointPortraitPipeline
from jointportrait.applications.depth_estimation import estimate_depth
from jointportrait.loading import joint_components_from_base
from jointportrait.models.components import BaseComponents
from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.widen import widen_unet


def _pipeline(size: str, resolution: int, in_channels: int, device: str, dtype) -> JointPortraitPipeline:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    unet_cfg, vae_cfg, _ = SIZES[size]
    torch.manual_seed(0)
    vae = AutoencoderKL(latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, **vae_cfg)
    base = UNet2DConditionModel(sample_size=resolution // 8, in_channels=4, out_channels=4, **unet_cfg)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              timestep_spacing="trailing")
    parts = joint_components_from_base(BaseComponents(unet=base, vae=vae, scheduler=scheduler))
    parts = parts.replace(unet=widen_unet(parts.unet, in_channels, 8))
    pipe = JointPortraitPipeline(**parts.pipeline_kwargs()).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _depth_call(pipe, photo, res: int):
    return lambda: estimate_depth(pipe, photo, num_inference_steps=1, processing_resolution=res,
                                  generator=torch.Generator().manual_seed(0))


def _median_ms(fn, device: str, repeats: int) -> float:
    fn()  # warm-up (cuDNN autotuning, allocator)
    return 1000 * statistics.median(measure(fn, device) for _ in range(repeats))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default="sd15", choices=tuple(SIZES))
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4, help="training batch per step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s of the device")
    args = parser.parse_args(argv if argv is not None else [])
    if not argv and not args.device.startswith("cuda"):
        print("bench_gpu_figures: no GPU here; skipped (run with --device cpu --size small to check the code)")
        return
    res, dev = args.resolution, args.device
    if dev == "cpu":
        torch.set_num_threads(1)
    photo = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (res, res, 3), dtype=np.uint8))

    depth_ms = _median_ms(_depth_call(_pipeline(args.size, res, 18, dev, torch.bfloat16), photo, res), dev,
                          args.repeats)
    stage1 = _pipeline(args.size, res, 8, dev, torch.bfloat16)
    sample_ms = _median_ms(lambda: stage1(photo, num_inference_steps=20, height=res, width=res, output_type="np",
                                          generator=torch.Generator().manual_seed(0)), dev, args.repeats)

    model = JointDenoiser(stage1.unet, stage1.reference_unet).float().train()
    model.freeze_reference_parameters_without_reader()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    h = res // 8
    x, ref = torch.randn(args.batch, 8, h, h, device=dev), torch.randn(args.batch, 4, h, h, device=dev)
    ehs = torch.randn(args.batch, 1, model.unet.config.cross_attention_dim, device=dev)
    t = torch.randint(0, 1000, (args.batch,), device=dev)

    def step() -> None:
        with torch.autocast(torch.device(dev).type, dtype=torch.bfloat16):
            loss = model(x, t, ehs, reference_latents=ref).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step_ms = _median_ms(step, dev, args.repeats)
    samples_per_s = args.batch / (step_ms / 1000)
    mfu = flops / (step_ms / 1000) / (args.peak_tflops * 1e12) if args.peak_tflops else None
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else dev
    text = "\n".join([
        f"## Absolute figures on {name} (`python benchmarks/bench_gpu_figures.py --device {dev}"
        + (f" --peak-tflops {args.peak_tflops:g}" if args.peak_tflops else "") + "`)",
        "",
        f"`{args.size}` sizes, {res} x {res}, random weights, medians of {args.repeats}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| depth estimate, 1 step, bf16 weights (whole call) | {depth_ms:.1f} ms |",
        f"| joint sample, 20 steps, bf16 weights (whole call) | {sample_ms:.1f} ms |",
        f"| stage-1 training step, batch {args.batch}, bf16 autocast, AdamW | {step_ms:.1f} ms |",
        f"| stage-1 training samples per second | {samples_per_s:.2f} |",
        f"| model FLOPs per training step | {flops / 1e9:,.1f} GFLOP |",
        f"| MFU | {f'{mfu:.1%}' if mfu is not None else 'give --peak-tflops'} |",
    ])
    print(text)
    if dev.startswith("cuda"):
        update_section("gpu", text)


if __name__ == "__main__":
    main(sys.argv[1:])
