"""Cost of one stage-1 training step (denoiser + ReferenceNet) against one plain 4-channel UNet step.

Both steps are forward + backward + AdamW on latents (the frozen VAE is left
out: it is the same for both). Two UNets run in the joint step, so 2.0 is the
floor; the reference attention's longer keys/values add the rest (target
<= 2.2). Peak memory of the joint step is measured with and without gradient
checkpointing, each in a fresh process: the peak during one step above the
memory held before it (model, gradients, AdamW state): peak RSS on CPU, peak
allocated on GPU.

    python benchmarks/bench_train_step.py            # times, memory, BENCHMARKS.md section
    python benchmarks/bench_train_step.py --memory on|off   # one memory probe (used internally)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

BATCH = 2
LATENT = 32  # 256 px images
UNET = {
    "sample_size": LATENT, "block_out_channels": (64, 128, 256), "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 256, "attention_head_dim": 8, "norm_num_groups": 32,
}


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _joint_model():
    from diffusers import UNet2DConditionModel

    from jointportrait.models.joint_denoiser import JointDenoiser
    from jointportrait.models.widen import widen_unet

    torch.manual_seed(0)
    base = UNet2DConditionModel(in_channels=4, out_channels=4, **UNET)
    model = JointDenoiser(widen_unet(base, 8, 8), UNet2DConditionModel(in_channels=4, out_channels=4, **UNET))
    model.freeze_reference_parameters_without_reader()
    return model.to(_device()).train()


def _plain_model(channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(in_channels=channels, out_channels=channels, **UNET).to(_device()).train()


def _step_fn(model, joint: bool, channels: int = 4):
    """One training step on random latents: forward, MSE to the noise, backward, AdamW."""
    device = _device()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    c = 8 if joint else channels
    x = torch.randn(BATCH, c, LATENT, LATENT, device=device)
    noise = torch.randn_like(x)
    ref = torch.randn(BATCH, 4, LATENT, LATENT, device=device)
    ehs = torch.randn(BATCH, 1, UNET["cross_attention_dim"], device=device)
    t = torch.tensor([10, 600], device=device)

    def step():
        if joint:
            pred = model(x, t, ehs, reference_latents=ref)
        else:
            pred = model(x, t, encoder_hidden_states=ehs, return_dict=False)[0]
        torch.nn.functional.mse_loss(pred, noise).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_probe(checkpointing: bool) -> float:
    """Peak memory (MiB) that joint training steps add on top of the built model, in this process."""
    model = _joint_model()
    if checkpointing:
        model.unet.enable_gradient_checkpointing()
        model.reference_unet.enable_gradient_checkpointing()
    step = _step_fn(model, joint=True)
    step()  # optimizer state exists from here on: count it in the baseline
    if _device().type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    base = _status_mib("VmRSS")
    step()
    return _status_mib("VmHWM") - base


def _memory(checkpointing: bool) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, __file__, "--memory", "on" if checkpointing else "off"],  # fresh process
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def _attention_share(step) -> tuple[float, float]:
    """(total, scaled-dot-product attention forward + backward) self time in ms of one profiled ``step``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])]
    with profile(activities=activities) as prof:
        step()
    events = prof.key_averages()

    def self_time(e) -> float:  # device time on GPU (CPU time there is only the launches)
        return e.self_device_time_total if torch.cuda.is_available() else e.self_cpu_time_total

    total = sum(self_time(e) for e in events) / 1000
    attention = sum(self_time(e) for e in events if "scaled_dot_product" in e.key) / 1000
    return total, attention


def measure(rounds: int = 5) -> dict:
    joint, plain = _joint_model(), _plain_model()
    step_joint, step_plain = _step_fn(joint, True), _step_fn(plain, False)
    step_wide = _step_fn(_plain_model(8), False, channels=8)  # the denoiser alone, no ReferenceNet
    step_joint(), step_plain(), step_wide()  # warm-up
    t_joint, t_plain, t_wide = [], [], []
    for _ in range(rounds):  # interleaved, so that load from elsewhere hits all alike
        for fn, times in ((step_joint, t_joint), (step_plain, t_plain), (step_wide, t_wide)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(t_joint, t_plain)]
    profiles = [(_attention_share(step_joint), _attention_share(step_plain)) for _ in range(3)]
    attn_share = statistics.median(pa / pt for _, (pt, pa) in profiles)
    attn_ratio = statistics.median(ja / pa for (_, ja), (_, pa) in profiles)
    rest_ratio = statistics.median((jt - ja) / (pt - pa) for (jt, ja), (pt, pa) in profiles)
    n_joint = sum(p.numel() for p in joint.parameters() if p.requires_grad)
    n_plain = sum(p.numel() for p in plain.parameters())
    return {"joint_s": statistics.median(t_joint), "plain_s": statistics.median(t_plain),
            "ratio": statistics.median(ratios), "wide_s": statistics.median(t_wide),
            "wide_ratio": statistics.median([a / b for a, b in zip(t_wide, t_plain)]),
            "attn_share_plain": attn_share, "attn_ratio": attn_ratio, "rest_ratio": rest_ratio, "params_joint": n_joint, "params_plain": n_plain}


def main() -> None:
    from benchmarks.report import update_section

    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # shared CPUs: one thread gives stable timings
    r = measure()
    mem_off, mem_on = _memory(False), _memory(True)
    unit = "peak allocated" if torch.cuda.is_available() else "peak RSS"
    unit += " during one step above the model + optimizer state"
    print(f"joint step {r['joint_s'] * 1000:.0f} ms, plain UNet step {r['plain_s'] * 1000:.0f} ms, "
          f"ratio {r['ratio']:.2f}; {unit} {mem_off:.0f} MiB without / {mem_on:.0f} MiB with checkpointing")
    update_section("train_step", f"""## Training step: joint denoiser + ReferenceNet vs plain UNet

UNet `block_out_channels=(64, 128, 256)`, 2 layers per block, batch {BATCH}, {LATENT}x{LATENT} latents;
forward + backward + AdamW, fp32, median of interleaved steps (`benchmarks/bench_train_step.py`;
on CPU with one thread, since the machine is shared).

| step | trained parameters | time | ratio |
|---|---|---|---|
| plain 4-channel UNet | {r['params_plain']:,} | {r['plain_s'] * 1000:.0f} ms | 1.00 |
| 8-channel denoiser alone (no ReferenceNet) | | {r['wide_s'] * 1000:.0f} ms | {r['wide_ratio']:.2f} |
| stage 1: 8-channel denoiser + ReferenceNet | {r['params_joint']:,} | {r['joint_s'] * 1000:.0f} ms | **{r['ratio']:.2f}** |

Two UNets run, so 2.0 is the floor if attention were free; target <= 2.2. Profiled steps
(`torch.profiler`, self time, median of 3 pairs): attention (SDPA forward + backward) is {r['attn_share_plain']:.0%} of the plain
step at these sizes, and costs {r['attn_ratio']:.2f}x as much in the joint step (the ReferenceNet's own
attention plus the denoiser's over [own, reference] = twice the keys); everything else costs
{r['rest_ratio']:.2f}x.

| joint step, {unit} | MiB |
|---|---|
| without gradient checkpointing | {mem_off:.0f} |
| with gradient checkpointing | {mem_on:.0f} |
""")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory", choices=("on", "off"), help="run one memory probe and print JSON")
    args = parser.parse_args()
    if args.memory:
        torch.set_num_threads(1)
        print(json.dumps({"peak_mib": _memory_probe(args.memory == "on")}))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        main()
