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
