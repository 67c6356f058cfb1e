"""The video denoiser (paper Fig. 2, supplementary 7.1): the joint denoiser with motion modules after every
spatial layer, motion frames passed explicitly, clips of frames aligned with one reference each."""

from __future__ import annotations

import pytest
import torch

from jointportrait.loading import joint_components_from_base, tiny_base_components
from jointportrait.models.joint_denoiser import JointDenoiser
from jointportrait.models.motion import build_motion_adapter, zero_motion_output
from jointportrait.models.video_denoiser import VideoJointDenoiser, bank_for_frames
from jointportrait.models.widen import widen_unet

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

B, F, N = 2, 3, 2  # clips, frames per clip, motion frames


def _video(channels: int, zero: bool, dtype=torch.float64) -> VideoJointDenoiser:
    parts = joint_components_from_base(tiny_base_components(seed=1))
    unet = parts.unet if channels == 8 else widen_unet(parts.unet, 18, 8)
    if channels == 18:  # widening zeroes the new inputs: give them weights so the test sees them
        with torch.no_grad():
            unet.conv_in.weight[:, 8:].normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    adapter = build_motion_adapter(unet, seed=2, zero_output=zero)
    return VideoJointDenoiser(unet, parts.reference_unet, adapter).to(dtype).eval()


def _inputs(channels: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(11)
    return dict(
        sample=torch.randn(B * F, channels, 8, 8, generator=g, dtype=dtype),
        timestep=torch.tensor([17, 801]),
        encoder_hidden_states=torch.randn(B, 1, 32, generator=g, dtype=dtype),
        reference=torch.randn(B, 4, 8, 8, generator=g, dtype=dtype),
        motion=torch.randn(B * N, 4, 8, 8, generator=g, dtype=dtype),
    )


@pytest.mark.parametrize("channels", [8, 18])
def test_zero_motion_output_equals_the_image_model_frame_by_frame(channels):
    video = _video(channels, zero=True)
    x = _inputs(channels)
    image_model = JointDenoiser(video.unet, video.reference_unet)  # the same UNets, no motion modules
    with torch.no_grad():
        motion = video.encode_motion_frames(x["motion"], x["encoder_hidden_states"], N)
        out = video(x["sample"], x["timestep"], x["encoder_hidden_states"], num_frames=F,
                    reference_latents=x["reference"], motion=motion)
        bank = bank_for_frames(video.encode_reference(x["reference"], x["encoder_hidden_states"]), F)
        frames = image_model(x["sample"], x["timestep"].repeat_interleave(F),
                             x["encoder_hidden_states"].repeat_interleave(F, 0), reference_bank=bank)
        assert torch.equal(out, frames)  # bit-exact in float64: the same operations in the same order
        for i in range(B * F):  # and each frame alone through the image model
            clip = i // F
            alone = image_model(x["sample"][i:i + 1], x["timestep"][clip:clip + 1],
                                x["encoder_hidden_states"][clip:clip + 1],
                                reference_latents=x["reference"][clip:clip + 1])
            assert torch.allclose(out[i:i + 1], alone, atol=1e-12, rtol=0)


def test_nonzero_motion_modules_mix_frames_and_read_motion_frames():
    video = _video(8, zero=False)
    x = _inputs(8)
    with torch.no_grad():
        m1 = video.encode_motion_frames(x["motion"], x["encoder_hidden_states"], N)
        m2 = video.encode_motion_frames(x["motion"].flip(0), x["encoder_hidden_states"], N)
        run = lambda sample, motion: video(sample, x["timestep"], x["encoder_hidden_states"], num_frames=F,  # noqa: E731
                                           reference_latents=x["reference"], motion=motion)
        base = run(x["sample"], m1)
        other_motion = run(x["sample"], m2)
        changed = x["sample"].clone()
        changed[F - 1] += 1.0  # the last frame of clip 0
        other_frame = run(changed, m1)
    assert not torch.allclose(base, other_motion, atol=1e-8)
    assert not torch.allclose(base[0], other_frame[0], atol=1e-8)  # frame 0 sees frame 2 of its clip
    assert torch.equal(base[F:], other_frame[F:])  # the other clip does not


def test_masked_motion_keys_make_the_output_independent_of_the_motion_frames():
    video = _video(18, zero=False)
    x = _inputs(18)
    masked = torch.zeros(B, N, dtype=torch.bool)
    with torch.no_grad():
        outs = []
        for latents in (x["motion"], torch.randn_like(x["motion"]) * 3):
            motion = video.encode_motion_frames(latents, x["encoder_hidden_states"], N, keep=masked)
            outs.append(video(x["sample"], x["timestep"], x["encoder_hidden_states"], num_frames=F,
                              reference_latents=x["reference"], motion=motion))
    assert torch.equal(outs[0], outs[1])


def test_clips_are_independent_rows_with_their_own_reference():
    video = _video(8, zero=False)
    x = _inputs(8)
    with torch.no_grad():
        motion = video.encode_motion_frames(x["motion"], x["encoder_hidden_states"], N)
        both = video(x["sample"], x["timestep"], x["encoder_hidden_states"], num_frames=F,
                     reference_latents=x["reference"], motion=motion)
        second = video(x["sample"][F:], x["timestep"][1:], x["encoder_hidden_states"][1:], num_frames=F,
                       reference_latents=x["reference"][1:], motion=motion.select(torch.tensor([1])))
    assert torch.allclose(both[F:], second, atol=1e-12)


def test_gradient_checkpointing_gives_the_same_gradients():
    video = _video(18, zero=False, dtype=torch.float64).train()
    video.unet.requires_grad_(False)
    video.reference_unet.requires_grad_(False)
    x = _inputs(18)
    motion = video.encode_motion_frames(x["motion"], x["encoder_hidden_states"], N)
    grads = []
    for checkpointing in (False, True):
        video.zero_grad(set_to_none=True)
        if checkpointing:
            video.enable_gradient_checkpointing()
        out = video(x["sample"], x["timestep"], x["encoder_hidden_states"], num_frames=F,
                    reference_latents=x["reference"], motion=motion)
        (out ** 2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in video.motion_adapter.named_parameters()})
    assert video.gradient_checkpointing and video.unet.is_gradient_checkpointing
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-12, rtol=1e-10) for k in grads[0])
    assert any(g.abs().sum() > 0 for g in grads[0].values())


def test_zero_output_adapter_gets_gradients_at_its_output_first():
    video = _video(8, zero=True).train()
    x = _inputs(8)
    motion = video.encode_motion_frames(x["motion"], x["encoder_hidden_states"], N)
    out = video(x["sample"], x["timestep"], x["encoder_hidden_states"], num_frames=F,
                reference_latents=x["reference"], motion=motion)
    out.pow(2).mean().backward()
    proj_out = video.motion_adapter.down_blocks[0].motion_modules[0].proj_out.weight
    assert proj_out.grad is not None and proj_out.grad.abs().sum() > 0


def test_too_many_frames_for_the_position_table():
    video = _video(8, zero=True)
    x = _inputs(8)
    zero_motion_output(video.motion_adapter)
    frames = video.max_frames  # + N motion frames: one too many
    motion = video.encode_motion_frames(x["motion"][:N], x["encoder_hidden_states"][:1], N)
    with pytest.raises(ValueError, match="positions"):
        video(torch.zeros(frames, 8, 8, 8, dtype=torch.float64), x["timestep"][:1], x["encoder_hidden_states"][:1],
              num_frames=frames, reference_latents=x["reference"][:1], motion=motion)
