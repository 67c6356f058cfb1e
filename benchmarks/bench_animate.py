"""Animation cost per frame against the image pipeline's cost per image (paper Sec. 5.5).

Both pipelines are built in this run from the SAME random UNets, ReferenceNet and VAE (the
18-channel stage-2 denoiser); the video pipeline adds a motion adapter sized for the UNet
(a temporal module after every spatial layer). The video call animates ``--frames`` frames
clip by clip (14 frames per clip, 4 motion frames, as ``jointportrait animate``); the image
call is one depth-to-image portrait per call, at the same size and steps. The figure is
seconds per frame over seconds per image, calls interleaved and medians taken (target <= 1.3).
A second table times one denoiser call per frame (14 frames at once against one image), to
show what the motion modules add apart from batching.

    python benchmarks/bench_animate.py [--size small|sd15] [--device cpu|cuda] [--steps 4] [--frames 18]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from benchmarks.report import timeit, update_section
from jointportrait.loading import joint_components_from_base
from jointportrait.models.components import BaseComponents
from jointportrait.models.motion import build_motion_adapter
from jointportrait.models.widen import widen_unet
from jointportrait.pipelines import JointPortraitPipeline, JointPortraitVideoPipeline

# name -> (UNet config, VAE config, resolution)
SIZES = {
    "small": (
        dict(block_out_channels=(64, 128, 256), layers_per_block=2, cross_attention_dim=256, attention_head_dim=8,
             down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=32),
        dict(block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=32),
        128,
    ),
    "sd15": (
        dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
             attention_head_dim=8),
        dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2),
        512,
    ),
}
CLIP_LENGTH, MOTION_FRAMES = 14, 4


def build(size: str, device: str, dtype: torch.dtype):
    unet_cfg, vae_cfg, resolution = SIZES[size]
    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        **vae_cfg)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    base = UNet2DConditionModel(sample_size=resolution // 8, in_channels=4, out_channels=4, **unet_cfg)
    joint = joint_components_from_base(BaseComponents(unet=base, vae=vae, scheduler=scheduler))
    joint = joint.replace(unet=widen_unet(joint.unet, 18, 8))
    adapter = build_motion_adapter(joint.unet, zero_output=False)
    image = JointPortraitPipeline(**joint.pipeline_kwargs()).to(device, dtype)
    video = JointPortraitVideoPipeline(**joint.pipeline_kwargs(), motion_adapter=adapter).to(device, dtype)
    for pipe in (image, video):
        pipe.set_progress_bar_config(disable=True)
    return image, video, resolution


def inputs(resolution: int, frames: int):
    rng = np.random.default_rng(0)
    reference = rng.random((resolution, resolution, 3)).astype(np.float32)
    ys, xs = np.mgrid[0:resolution, 0:resolution] / (resolution - 1) * 2 - 1
    depths = [np.where((xs - 0.01 * f) ** 2 + ys**2 < 0.5, 2.0 - 0.3 * np.sqrt(np.clip(0.5 - (xs - 0.01 * f) ** 2
                                                                                       - ys**2, 0, None)), 0.0)
              .astype(np.float32) for f in range(frames)]
    return reference, depths


def denoiser_call_times(image, video, resolution: int, device: str, dtype, repeats: int, sync) -> dict[str, float]:
    """One denoiser call: 14 frames with motion modules and motion frames vs one image, and 14 images at once."""
    h = resolution // 8
    cross = image.unet.config.cross_attention_dim
    t = torch.tensor([500], device=device)
    with torch.no_grad():
        ehs = torch.zeros(1, 1, cross, device=device, dtype=dtype)
        bank = video.video_denoiser.encode_reference(torch.randn(1, 4, h, h, device=device, dtype=dtype), ehs)
        frames_bank = bank.select(torch.zeros(CLIP_LENGTH, dtype=torch.long, device=device))
        motion = video.video_denoiser.encode_motion_frames(
            torch.randn(MOTION_FRAMES, 4, h, h, device=device, dtype=dtype), ehs, MOTION_FRAMES)
        x1 = torch.randn(1, 18, h, h, device=device, dtype=dtype)
        xf = torch.randn(CLIP_LENGTH, 18, h, h, device=device, dtype=dtype)
        calls = {
            "clip": lambda: video.video_denoiser(xf, t, ehs, num_frames=CLIP_LENGTH, reference_bank=frames_bank,
                                                 motion=motion),
            "batch": lambda: image.joint_denoiser(xf, t, ehs.expand(CLIP_LENGTH, -1, -1), reference_bank=frames_bank),
            "image": lambda: image.joint_denoiser(x1, t, ehs, reference_bank=bank),
        }
        samples = {k: [] for k in calls}
        for _ in range(repeats):
            for k, fn in calls.items():
                samples[k].append(timeit(sync(fn), repeats=1, warmup=1))
    return {k: float(np.median(v)) for k, v in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=tuple(SIZES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=CLIP_LENGTH + 4, help="frames per video call (two clips)")
    parser.add_argument("--images", type=int, default=2, help="image calls per timed sample")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv if argv is not None else [])
    dtype = getattr(torch, args.dtype)
    image, video, res = build(args.size, args.device, dtype)
    reference, depths = inputs(res, args.frames)

    def sync(fn):
        def wrapped():
            fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        return wrapped

    def run_video():
        video(reference, depths, clip_length=CLIP_LENGTH, motion_frames=MOTION_FRAMES, num_inference_steps=args.steps,
              height=res, width=res, generator=torch.Generator().manual_seed(0))

    def run_images():
        for i in range(args.images):
            image(reference, depth=[depths[i]], num_inference_steps=args.steps, height=res, width=res,
                  generator=torch.Generator().manual_seed(i), output_type="np")

    runs = {"video": sync(run_video), "image": sync(run_images)}
    samples = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for k, fn in runs.items():
            samples[k].append(timeit(fn, repeats=1, warmup=0))
    per_frame = float(np.median(samples["video"])) / args.frames
    per_image = float(np.median(samples["image"])) / args.images
    calls = denoiser_call_times(image, video, res, args.device, dtype, args.repeats, sync)
    adapter_params = sum(p.numel() for p in video.motion_adapter.parameters())
    unet_params = sum(p.numel() for p in video.unet.parameters())
    lines = [
        f"Animation against depth-to-image, `{args.size}` UNet/VAE sizes (motion modules {adapter_params:,} "
        f"parameters beside the UNet's {unet_params:,}), {res}x{res}, {args.steps} DDIM steps, {args.dtype}, "
        f"device {args.device}; {args.frames} frames in clips of {CLIP_LENGTH} with {MOTION_FRAMES} motion frames "
        "against one portrait per image call; both pipelines over the same modules, calls interleaved, "
        f"medians of {args.repeats}.",
        "",
        "| pipeline | seconds per frame / image |",
        "|---|---|",
        f"| `JointPortraitVideoPipeline` (animate) | {per_frame:.4f} |",
        f"| `JointPortraitPipeline` depth-to-image | {per_image:.4f} |",
        "",
        f"**Seconds per frame / seconds per image: {per_frame / per_image:.2f}** (target <= 1.3).",
        "",
        f"One denoiser call: {CLIP_LENGTH} frames with motion modules and {MOTION_FRAMES} motion frames "
        f"{calls['clip']:.4f} s ({calls['clip'] / CLIP_LENGTH:.4f} s per frame), the same {CLIP_LENGTH} frames "
        f"through the image denoiser as a batch {calls['batch']:.4f} s, one image {calls['image']:.4f} s. Motion "
        f"modules over batched frames: **{calls['clip'] / calls['batch']:.2f}**; batched frames over single "
        f"images: {calls['batch'] / CLIP_LENGTH / calls['image']:.2f}.",
    ]
    print("\n".join(lines))
    update_section(f"animate_{args.size}_{args.device.split(':')[0]}", "\n".join(lines))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
