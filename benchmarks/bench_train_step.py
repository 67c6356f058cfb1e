"""Cost of one stage-1 training step (denoiser + ReferenceNet) against one plain 4-channel UNet step.

Both steps are forward + backward + AdamW on latents (the frozen VAE is left
out: it is the same for both). Two UNets run in the joint step, so 2.0 would be
the floor if attention were free; the reference tokens double the keys/values
of every denoiser self-attention, and the floor adds what that costs the
attention kernels forward and backward (every kernel call of a joint step timed
alone with and without the reference keys; benchmarks/profiling.py). Target
<= 2.2, or within 5 % of the floor. Also measured side by side: the joint step
with the whole ReferenceNet run (no stop after its last writer), with gradient
checkpointing, under bf16 autocast and with channels-last weights. Peak memory
of the joint step is measured with and without gradient checkpointing, each in
a fresh process: the peak during one step above the memory held before it
(model, gradients, AdamW state): peak RSS on CPU, peak allocated on GPU.

On a CPU the times are this process's CPU time with one torch thread (the
machine is shared; wall time would count waiting for a core).

    python benchmarks/bench_train_step.py            # times, memory, BENCHMARKS.md section
    python benchmarks/bench_train_step.py --memory on|off   # one memory probe (used internally)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


def _joint_variants() -> dict:
    """Joint steps: as trained, with the whole ReferenceNet run, with gradient checkpointing, bf16 autocast,
    channels-last weights."""
    import functools

    import jointportrait.models.reference_denoiser as reference_denoiser

    variants = {}
    model = _joint_model()
    variants["stage 1 (as trained)"] = _step_fn(model, joint=True)
    full_model = _joint_model()
    full_step = _step_fn(full_model, joint=True)
    run_all = functools.partial(reference_denoiser.run_reference_net, stop_early=False)

    def full():
        original = reference_denoiser.run_reference_net
        reference_denoiser.run_reference_net = run_all
        try:
            full_step()
        finally:
            reference_denoiser.run_reference_net = original

    variants["whole ReferenceNet run (no early stop)"] = full
    ckpt = _joint_model()
    ckpt.unet.enable_gradient_checkpointing()
    ckpt.reference_unet.enable_gradient_checkpointing()
    variants["gradient checkpointing"] = _step_fn(ckpt, joint=True)
    auto_step = _step_fn(_joint_model(), joint=True)

    def autocast():
        with torch.autocast(_device().type, dtype=torch.bfloat16):
            auto_step()

    variants["bf16 autocast (`train.mixed_precision: bf16`)"] = autocast
    variants["channels-last weights"] = _step_fn(_joint_model().to(memory_format=torch.channels_last), joint=True)
    return variants


def measure(rounds: int = 5) -> dict:
    from benchmarks.profiling import (
        attention_extra,
        interleaved,
        median_spread,
        module_times,
        op_times,
        ratio_stats,
        record_attention_shapes,
    )

    joint, plain = _joint_model(), _plain_model()
    step_joint, step_plain = _step_fn(joint, True), _step_fn(plain, False)
    step_wide = _step_fn(_plain_model(8), False, channels=8)  # the denoiser alone, no ReferenceNet
    variants = _joint_variants()
    fns = {"plain": step_plain, "wide": step_wide, "joint": step_joint, **variants}
    t = interleaved(fns, rounds, _device())  # one of each per round: load from elsewhere hits all alike
    with record_attention_shapes() as calls:
        step_joint()
    _, extra = attention_extra(calls, lambda q, k: k[2] - q[2] if k[2] == 2 * q[2] else 0, backward=True,
                               device=_device())
    plain_s = median_spread(t["plain"])[0]
    floor = 2.0 + extra / plain_s
    with module_times({"ReferenceNet": joint.reference_unet, "denoiser": joint.unet}, _device()) as fwd_joint:
        step_joint()
    with module_times({"denoiser": plain}, _device()) as fwd_plain:
        step_plain()
    ops_joint, ops_plain = op_times(step_joint), op_times(step_plain)
    n_joint = sum(p.numel() for p in joint.parameters() if p.requires_grad)
    n_plain = sum(p.numel() for p in plain.parameters())
    return {"t": t, "ratio": ratio_stats(t["joint"], t["plain"]), "wide": ratio_stats(t["wide"], t["plain"]),
            "variants": {k: ratio_stats(t[k], t["plain"]) for k in variants},
            "extra": extra, "floor": floor, "fwd_joint": dict(fwd_joint), "fwd_plain": dict(fwd_plain),
            "ops_joint": ops_joint, "ops_plain": ops_plain, "params_joint": n_joint, "params_plain": n_plain,
            "median_spread": median_spread}


def main() -> None:
    from benchmarks.report import update_section

    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # shared CPUs: one thread, CPU time
    r = measure()
    ms = r["median_spread"]
    mem_off, mem_on = _memory(False), _memory(True)
    unit = "peak allocated" if torch.cuda.is_available() else "peak RSS"
    unit += " during one step above the model + optimizer state"
    clock = "CPU time, 1 thread" if not torch.cuda.is_available() else "synchronised wall time"

    def row(label: str, key: str, ratio: tuple[float, float], params: str = "") -> str:
        med, spread = ms(r["t"][key])
        return (f"| {label} | {params} | {med * 1000:.0f} ± {med * spread * 1000:.0f} ms | "
                f"{ratio[0]:.2f} ± {ratio[0] * ratio[1]:.2f} | {ratio[0] / r['floor']:.3f} |")

    rows = [row("plain 4-channel UNet", "plain", (1.0, 0.0), f"{r['params_plain']:,}"),
            row("8-channel denoiser alone (no ReferenceNet)", "wide", r["wide"]),
            row("**stage 1: 8-channel denoiser + ReferenceNet**", "joint", r["ratio"], f"{r['params_joint']:,}")]
    rows += [row(f"stage 1, {k}", k, v) for k, v in r["variants"].items() if k != "stage 1 (as trained)"]
    fwd = [f"| {k} | {r['fwd_joint'].get(k, 0.0) * 1000:.0f} | {r['fwd_plain'].get(k, 0.0) * 1000:.0f} |"
           for k in sorted(set(r["fwd_joint"]) | set(r["fwd_plain"]))]
    ops = [f"| {k} | {r['ops_joint'].get(k, 0.0):.0%} | {r['ops_plain'].get(k, 0.0):.0%} |"
           for k in r["ops_joint"]]
    text = f"""## Training step: joint denoiser + ReferenceNet vs plain UNet

`python benchmarks/bench_train_step.py`: UNet `block_out_channels=(64, 128, 256)`, 2 layers per block,
batch {BATCH}, {LATENT}x{LATENT} latents; forward + backward + AdamW, fp32 unless said; {clock}; medians of
5 interleaved rounds ± half the interquartile range (ratios: per round).

Floor: two plain UNet steps + what the reference keys add to the attention kernels forward and backward
({r['extra'] * 1000:.0f} ms; every kernel call of a joint step timed alone with and without them) =
**{r['floor']:.2f}** x the plain step. Target <= 2.2, or within 5 % of the floor.

| step | trained parameters | time | ratio to plain | ratio / floor |
|---|---|---|---|---|
{chr(10).join(rows)}

Forward time by module (CPU time from forward hooks, ms; backward and optimizer not included):

| module | joint step | plain step |
|---|---|---|
{chr(10).join(fwd)}

Share of the step's operator time (`torch.profiler` self time, forward + backward + optimizer):

| operators | joint step | plain step |
|---|---|---|
{chr(10).join(ops)}

| joint step, {unit} | MiB |
|---|---|
| without gradient checkpointing | {mem_off:.0f} |
| with gradient checkpointing | {mem_on:.0f} |
"""
    print(text)
    update_section("train_step", text)


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
