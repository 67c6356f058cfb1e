"""JointPortraitPipeline: determinism, reference dependence, guidance, inpainting modes."""

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

from jointportrait import JointPortraitPipeline, widen_unet
from jointportrait.depth_codec import normalize_depth
from jointportrait.latent_codec import encode_depth


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    p = JointPortraitPipeline.from_pretrained(tiny_model_dir)
    p.set_progress_bar_config(disable=True)
    return p


def _ref(seed):
    return np.random.default_rng(seed).uniform(0, 1, size=(64, 64, 3)).astype(np.float32)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_outputs_and_same_seed_same_samples(pipe):
    a = pipe(_ref(0), num_images_per_reference=2, num_inference_steps=3, height=64, width=64, generator=_gen())
    b = pipe(_ref(0), num_images_per_reference=2, num_inference_steps=3, height=64, width=64, generator=_gen())
    assert len(a.images) == 2 and a.images[0].size == (64, 64)
    assert a.depths.shape == (2, 64, 64) and a.depths.dtype == np.float32
    assert a.depths.min() >= 0 and a.depths.max() <= 1
    assert np.array_equal(a.depths, b.depths)
    assert np.array_equal(np.asarray(a.images[1]), np.asarray(b.images[1]))
    assert not np.array_equal(a.depths[0], a.depths[1])  # two samples per reference differ


def test_a_different_reference_changes_the_output(pipe):
    a = pipe(_ref(0), num_inference_steps=3, height=64, width=64, generator=_gen(), output_type="latent")
    b = pipe(_ref(1), num_inference_steps=3, height=64, width=64, generator=_gen(), output_type="latent")
    assert (a.images - b.images).abs().max() > 1e-4


def test_guidance_runs_and_differs_from_unguided(pipe):
    kw = dict(num_inference_steps=3, height=64, width=64, output_type="latent")
    plain = pipe(_ref(0), generator=_gen(), **kw)
    guided = pipe(_ref(0), guidance_scale=3.0, generator=_gen(), **kw)
    assert (plain.depths - guided.depths).abs().max() > 1e-5


def test_batch_of_references_matches_single_calls(pipe):
    kw = dict(num_inference_steps=2, height=64, width=64, output_type="latent")
    latents = torch.randn(2, 8, 8, 8, generator=_gen(4))
    both = pipe([_ref(0), _ref(1)], latents=latents, **kw)
    second = pipe(_ref(1), latents=latents[1:], **kw)
    assert torch.allclose(both.images[1:], second.images, atol=1e-5)


def test_any_diffusers_scheduler(pipe):
    for cls in (EulerDiscreteScheduler, DPMSolverMultistepScheduler):
        pipe_s = JointPortraitPipeline(**{**pipe.components, "scheduler": cls.from_config(pipe.scheduler.config)})
        pipe_s.set_progress_bar_config(disable=True)
        out = pipe_s(_ref(0), num_inference_steps=3, height=64, width=64, generator=_gen(), output_type="np")
        assert np.isfinite(out.depths).all() and out.images.shape == (1, 64, 64, 3)


def test_replacement_keeps_the_known_depth_latent(pipe):
    depth = np.random.default_rng(3).uniform(1, 2, size=(64, 64)).astype(np.float32)
    out = pipe(_ref(0), depth=depth, num_inference_steps=3, height=64, width=64, generator=_gen(),
               output_type="latent", inpaint_mode="replacement")
    with torch.no_grad():
        expected = encode_depth(pipe.vae, normalize_depth(torch.from_numpy(depth))[None, None])
    assert torch.allclose(out.depths, expected, atol=1e-6)


def test_stage2_conditioning_mode(pipe):
    stage2 = JointPortraitPipeline(**{**pipe.components, "unet": widen_unet(pipe.unet, 18, 8)})
    stage2.set_progress_bar_config(disable=True)
    img = _ref(2)
    out = stage2(img, image=img, depth_mask=1.0, num_inference_steps=2, generator=_gen())
    assert out.depths.shape == (1, 64, 64)
    with pytest.raises(ValueError, match="18-channel"):
        pipe(_ref(0), image=_ref(0), inpaint_mode="conditioning", num_inference_steps=1)


def test_depth_estimation_encodes_the_photo_once_and_samples_as_before(pipe, monkeypatch):
    """Image = reference: the photo goes through the VAE encoder once, the blank depth once (a single row),
    and the samples equal those from a condition built by encoding every row."""
    from jointportrait import conditioning

    stage2 = JointPortraitPipeline(**{**pipe.components, "unet": widen_unet(pipe.unet, 18, 8)})
    stage2.set_progress_bar_config(disable=True)
    with torch.no_grad():  # train the new input channels a little so that the condition matters
        stage2.unet.conv_in.weight[:, 8:].normal_(0, 0.05, generator=_gen(5))
    img = _ref(3)
    rows = []
    encode = stage2.vae.encode
    monkeypatch.setattr(stage2.vae, "encode", lambda x, *a, **k: rows.append(x.shape[0]) or encode(x, *a, **k))
    fast = stage2(img, image=img, depth_mask=1.0, num_images_per_reference=2, num_inference_steps=2,
                  generator=_gen(), output_type="latent")
    assert rows == [1, 1]  # the reference (= photo), then one blank depth map
    plain_condition = conditioning.build_inpainting_condition
    monkeypatch.setattr(conditioning, "build_inpainting_condition",
                        lambda vae, rgb, depth, m_rgb, m_depth, **_: plain_condition(vae, rgb, depth, m_rgb, m_depth))
    import jointportrait.pipelines.pipeline_joint_portrait as module

    monkeypatch.setattr(module, "build_inpainting_condition", conditioning.build_inpainting_condition)
    slow = stage2(img, image=img, depth_mask=1.0, num_images_per_reference=2, num_inference_steps=2,
                  generator=_gen(), output_type="latent")
    assert len(rows) == 5  # the reference, the photo again, the blank depth
    assert torch.allclose(fast.depths, slow.depths, atol=1e-5) and torch.allclose(fast.images, slow.images, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height": 60, "width": 64}, "height"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"guidance_scale": 0.5}, "guidance_scale"),
        ({"rgb_mask": 0.0}, "rgb_mask"),
        ({"inpaint_mode": "magic"}, "inpaint_mode"),
        ({"output_type": "gif"}, "output_type"),
    ],
)
def test_check_inputs_names_the_argument(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(_ref(0), **kwargs)


def _spy_denoiser_inputs(pipe, monkeypatch) -> list[torch.Tensor]:
    """The denoiser input of every model call of ``pipe``."""
    calls = []
    forward = pipe.joint_denoiser.forward
    monkeypatch.setattr(pipe.joint_denoiser, "forward",
                        lambda sample, *a, **k: calls.append(sample.clone()) or forward(sample, *a, **k))
    return calls


def test_replacement_shows_the_known_image_from_the_first_model_call(pipe, monkeypatch):
    """8-channel depth estimation: the RGB half of every model input is the photo's latent noised to that
    call's timestep, so one step already depends on the photo."""
    from jointportrait.latent_codec import encode_rgb
    from jointportrait.pipelines.denoising import scheduler_with_spacing

    calls = _spy_denoiser_inputs(pipe, monkeypatch)
    reference = _ref(9)
    kw = dict(num_inference_steps=3, height=64, width=64, inpaint_mode="replacement", timestep_spacing="trailing",
              output_type="latent", output_domains=("depth",))
    photo = _ref(2)
    pipe(reference, image=photo, generator=_gen(5), **kw)
    assert len(calls) == 3
    g = _gen(5)
    torch.randn(1, 8, 8, 8, generator=g)  # the initial latents come first, then the known half's noise
    noise = torch.randn(1, 8, 8, 8, generator=g)
    scheduler = scheduler_with_spacing(pipe.scheduler, "trailing")
    scheduler.set_timesteps(3)
    with torch.no_grad():
        z = encode_rgb(pipe.vae, torch.from_numpy(photo).permute(2, 0, 1)[None] * 2 - 1)
    for sample, t in zip(calls, scheduler.timesteps):
        expected = scheduler.add_noise(z, noise[:, :4], t.view(1))
        torch.testing.assert_close(sample[:, :4], expected, atol=1e-5, rtol=1e-5)
    one_step = dict(kw, num_inference_steps=1)
    a = pipe(reference, image=_ref(2), generator=_gen(), **one_step).depths
    b = pipe(reference, image=_ref(3), generator=_gen(), **one_step).depths
    assert (a - b).abs().max() > 1e-4  # the same reference and noise, another photo: another depth


def test_the_reference_net_runs_once_per_call(pipe, monkeypatch):
    runs = []
    handle = pipe.reference_unet.register_forward_pre_hook(lambda *_: runs.append(1))
    try:
        for kwargs in ({}, {"guidance_scale": 2.0}, {"num_images_per_reference": 3},
                       {"guidance_scale": 3.0, "num_images_per_reference": 2}):
            runs.clear()
            pipe([_ref(0), _ref(1)], num_inference_steps=3, height=64, width=64, generator=_gen(),
                 output_type="latent", **kwargs)
            assert len(runs) == 1, kwargs  # one ReferenceNet pass for both references, whatever the steps
    finally:
        handle.remove()


@pytest.mark.slow
def test_compiled_denoiser_samples_what_the_eager_one_samples(tiny_stage2_model_dir):
    """torch.compile of the denoiser (minutes on a shared CPU): same latents, compiled once for the size."""
    from jointportrait.loading import load_joint_pipeline

    pipe = load_joint_pipeline(tiny_stage2_model_dir)
    kwargs = dict(num_inference_steps=3, height=64, width=64, output_type="latent", guidance_scale=2.0)
    eager = pipe(_ref(0), generator=_gen(), **kwargs)
    pipe.compile_denoiser()
    first = pipe(_ref(0), generator=_gen(), **kwargs)
    seconds = pipe.joint_denoiser.compile_seconds
    again = pipe(_ref(1), generator=_gen(), **kwargs)
    assert seconds is not None and pipe.joint_denoiser.compile_seconds == seconds  # kept from the first call
    assert torch.allclose(first.images, eager.images, atol=1e-4) and torch.allclose(first.depths, eager.depths, atol=1e-4)
    assert again.images.shape == first.images.shape
    assert "unet" in dict(pipe.components) and not any("_orig_mod" in k for k in pipe.unet.state_dict())
