"""The video pipeline (paper Sec. 5.5, supplementary 7.1): clip by clip with motion frames, the driving
depth as the depth-to-image task on every frame, a saved folder that loads strictly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import MotionAdapter, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from jointportrait.latent_codec import encode_depth
from jointportrait.loading import load_pipeline, load_video_pipeline
from jointportrait.models.motion import build_motion_adapter
from jointportrait.models.motion_checkpoint import MotionWeightsError
from jointportrait.pipelines import JointPortraitPipeline, JointPortraitVideoPipeline
from jointportrait.pipelines.pipeline_video import clip_bounds

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def pipe(tiny_video_model_dir):
    return load_video_pipeline(tiny_video_model_dir)


def _driving(num_frames: int, size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """A reference image and ``num_frames`` depth maps of a sphere cap moving to the right."""
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    depths = []
    for f in range(num_frames):
        r2 = (xs - 0.3 + 0.6 * f / max(num_frames - 1, 1)) ** 2 + ys**2
        depths.append(np.where(r2 < 0.5, 2.0 - np.sqrt(np.clip(0.5 - r2, 0, None)), 0.0).astype(np.float32))
    reference = np.random.default_rng(0).random((size, size, 3)).astype(np.float32)
    return reference, depths


def _spy_motion_latents(pipe, monkeypatch) -> list[torch.Tensor]:
    calls = []
    original = pipe.video_denoiser.encode_motion_frames

    def spy(latents, encoder_hidden_states, num_frames, keep=None):
        calls.append(latents.clone())
        return original(latents, encoder_hidden_states, num_frames, keep)

    monkeypatch.setattr(pipe.video_denoiser, "encode_motion_frames", spy)
    return calls


def test_clip_bounds():
    assert clip_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert clip_bounds(3, 14) == [(0, 3)]


def test_motion_frames_are_the_last_latents_of_the_previous_clip(pipe, monkeypatch):
    calls = _spy_motion_latents(pipe, monkeypatch)
    reference, depths = _driving(9)
    out = pipe(reference, depths, clip_length=4, motion_frames=2, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert out.clip_starts == [0, 4, 8] and out.images.shape == (9, 64, 64, 3) and out.depths.shape == (9, 64, 64)
    assert len(calls) == 3
    ref_latent = pipe.encode_references(reference, 64, 64, 1).latents
    assert torch.equal(calls[0], ref_latent.expand(2, -1, -1, -1))  # first clip: the reference repeated
    for k, start in enumerate(out.clip_starts[1:], start=1):
        assert torch.equal(calls[k], out.latents[start - 2:start, :4])  # clean RGB latents, no VAE round trip


def test_independent_clips_take_the_reference_every_time(pipe, monkeypatch):
    calls = _spy_motion_latents(pipe, monkeypatch)
    reference, depths = _driving(6)
    pipe(reference, depths, clip_length=3, motion_frames=2, independent_clips=True, num_inference_steps=1,
         generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2 and torch.equal(calls[0], calls[1])


def test_same_seed_same_video_and_motion_frames_matter(pipe):
    reference, depths = _driving(6)
    kwargs = dict(clip_length=3, motion_frames=2, num_inference_steps=2)
    a = pipe(reference, depths, generator=torch.Generator().manual_seed(5), **kwargs)
    b = pipe(reference, depths, generator=torch.Generator().manual_seed(5), **kwargs)
    c = pipe(reference, depths, generator=torch.Generator().manual_seed(6), **kwargs)
    d = pipe(reference, depths, generator=torch.Generator().manual_seed(5), independent_clips=True, **kwargs)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.depths, b.depths)
    assert not np.allclose(a.images, c.images)
    assert np.array_equal(a.images[:3], d.images[:3])  # the first clip is the same either way
    assert not np.allclose(a.images[3:], d.images[3:])  # the second sees the first


def test_guidance_rows_are_whole_clips(pipe, monkeypatch):
    # guidance doubles the clips ([uncond; cond]): both halves get the same motion frames, depth and frames
    seen = []
    forward = pipe.video_denoiser.forward

    def spy(sample, t, ehs, num_frames=1, reference_bank=None, motion=None, **kwargs):
        seen.append((sample.shape[0], ehs.shape[0], num_frames, motion.batch_size, reference_bank.batch_size,
                     reference_bank.keep.tolist()))
        return forward(sample, t, ehs, num_frames=num_frames, reference_bank=reference_bank, motion=motion, **kwargs)

    monkeypatch.setattr(pipe.video_denoiser, "forward", spy)
    reference, depths = _driving(4)
    guided = pipe(reference, depths, clip_length=3, motion_frames=1, num_inference_steps=1, guidance_scale=3.0,
                  generator=torch.Generator().manual_seed(0))
    assert seen[0] == (6, 2, 3, 2, 6, [False] * 3 + [True] * 3) and seen[-1][:3] == (2, 2, 1)
    monkeypatch.undo()
    plain = pipe(reference, depths, clip_length=3, motion_frames=1, num_inference_steps=1,
                 generator=torch.Generator().manual_seed(0))
    assert not np.allclose(guided.images, plain.images)


def test_zero_motion_video_equals_the_image_pipelines_depth_to_image(pipe):
    # the same UNets with zero motion output: every frame is the image pipeline's depth-to-image sample
    adapter = build_motion_adapter(pipe.unet, zero_output=True)
    video = JointPortraitVideoPipeline(vae=pipe.vae, unet=pipe.unet, reference_unet=pipe.reference_unet,
                                       motion_adapter=adapter, scheduler=pipe.scheduler)
    video.set_progress_bar_config(disable=True)
    image = pipe.image_pipeline()
    reference, depths = _driving(4)
    noise = torch.randn(4, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    out = video(reference, depths, clip_length=3, motion_frames=2, num_inference_steps=3, latents=noise)
    for i in range(4):
        frame = image(reference, depth=[depths[i]], num_inference_steps=3, latents=noise[i:i + 1],
                      output_type="np")
        assert np.allclose(out.images[i], frame.images[0], atol=1e-4)
        assert np.allclose(out.depths[i], frame.depths[0], atol=1e-4)


def test_stage1_model_animates_by_latent_replacement(tiny_model_dir):
    image = JointPortraitPipeline.from_pretrained(tiny_model_dir, local_files_only=True)
    adapter = build_motion_adapter(image.unet, seed=1, zero_output=False)
    video = JointPortraitVideoPipeline(**image.components, motion_adapter=adapter)
    video.set_progress_bar_config(disable=True)
    reference, depths = _driving(5)
    out = video(reference, depths, clip_length=3, motion_frames=1, num_inference_steps=2,
                generator=torch.Generator().manual_seed(0), output_type="latent")
    assert out.images.shape == (5, 4, 8, 8) and out.depths.shape == (5, 4, 8, 8)
    # replacement: the final depth latents are exactly the encoded driving depth of each frame
    expected = encode_depth(video.vae, video.prepare_depth(depths, None, 64, 64))
    assert torch.allclose(out.depths, expected, atol=1e-5)


def test_saved_layout_is_plain_diffusers_and_loads_by_class(pipe, tiny_video_model_dir):
    index = json.loads((tiny_video_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "JointPortraitVideoPipeline"
    assert index["motion_adapter"] == ["diffusers", "MotionAdapter"]
    unet = UNet2DConditionModel.from_pretrained(tiny_video_model_dir / "unet", local_files_only=True)
    assert unet.config.in_channels == 18
    adapter = MotionAdapter.from_pretrained(tiny_video_model_dir / "motion_adapter", local_files_only=True)
    assert all(torch.equal(a, b) for a, b in zip(adapter.state_dict().values(), pipe.motion_adapter.state_dict().values()))
    assert isinstance(load_pipeline(tiny_video_model_dir), JointPortraitVideoPipeline)


def test_a_damaged_motion_adapter_folder_is_refused(tiny_video_model_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_video_model_dir, tmp_path / "model")
    weights = tmp_path / "model" / "motion_adapter" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    del state["mid_block.motion_modules.0.proj_in.weight"]
    save_file(state, str(weights))
    with pytest.raises(MotionWeightsError, match="missing"):
        JointPortraitVideoPipeline.from_pretrained(tmp_path / "model", local_files_only=True)


def test_an_adapter_for_another_unet_is_refused(pipe):
    big = MotionAdapter(block_out_channels=(64, 128), motion_layers_per_block=1, motion_norm_num_groups=8)
    with pytest.raises(ValueError, match="motion adapter"):
        JointPortraitVideoPipeline(vae=pipe.vae, unet=pipe.unet, reference_unet=pipe.reference_unet,
                                   motion_adapter=big, scheduler=pipe.scheduler)


@pytest.mark.parametrize("kwargs, match", [
    (dict(motion_frames=5, clip_length=4), "must not exceed"),
    (dict(clip_length=30, motion_frames=4), "positions"),
    (dict(clip_length=0), "clip_length"),
    (dict(motion_frames=-1), "motion_frames"),
])
def test_check_inputs_names_the_argument(pipe, kwargs, match):
    reference, depths = _driving(9)
    with pytest.raises(ValueError, match=match):
        pipe(reference, depths, num_inference_steps=1, **kwargs)


def test_one_reference_only(pipe):
    reference, depths = _driving(2)
    with pytest.raises(ValueError, match="one image"):
        pipe([reference, reference], depths, num_inference_steps=1)
