"""Depth estimation of many photos per pipeline call, chunked decoding and the tiled VAE (issue 17)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from jointportrait.applications.depth_estimation import estimate_depth, estimate_depths, vae_tiling
from jointportrait.loading import load_joint_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", params=["stage1", "stage2"])
def pipe(request, tiny_model_dir, tiny_stage2_model_dir):
    return load_joint_pipeline(tiny_model_dir if request.param == "stage1" else tiny_stage2_model_dir)


def _photos() -> list[PIL.Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (48, 64), (64, 64), (64, 64), (24, 64)]  # three share a canvas, two have their own
    return [PIL.Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)) for hw in sizes]


def test_batched_estimates_equal_one_at_a_time(pipe):
    photos = _photos()
    ensemble = 2 if pipe.is_inpainting_model else 1  # latent replacement draws further noise per sample
    alone = [estimate_depth(pipe, p, num_inference_steps=2, ensemble_size=ensemble, processing_resolution=64,
                            generator=torch.Generator().manual_seed(i)) for i, p in enumerate(photos)]
    calls = []
    hook = pipe.reference_unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        batched = estimate_depths(pipe, photos, num_inference_steps=2, ensemble_size=ensemble,
                                  processing_resolution=64, batch_size=2,
                                  generators=[torch.Generator().manual_seed(i) for i in range(len(photos))])
    finally:
        hook.remove()
    assert len(calls) == 4  # canvases 64x64 (3 photos: calls of 2 + 1), 48x64 and 24x64
    for a, b, photo in zip(alone, batched, photos):
        assert b.depth.shape == (photo.height, photo.width) and b.members.shape == a.members.shape
        np.testing.assert_allclose(b.members, a.members, atol=1e-4)
        np.testing.assert_allclose(b.depth, a.depth, atol=1e-4)


def test_chunked_decoding_changes_nothing(tiny_stage2_model_dir):
    pipe = load_joint_pipeline(tiny_stage2_model_dir)
    photo = _photos()[0]
    kwargs = dict(image=photo, num_images_per_reference=3, num_inference_steps=1, rgb_mask=0.0, depth_mask=1.0,
                  output_type="np", output_domains=("depth",))
    whole = pipe(photo, generator=torch.Generator().manual_seed(0), **kwargs).depths
    chunked = pipe(photo, generator=torch.Generator().manual_seed(0), decode_chunk_size=2, **kwargs).depths
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    with pytest.raises(ValueError, match="decode_chunk_size"):
        pipe(photo, decode_chunk_size=0, **kwargs)


def test_vae_tiles_large_canvases_only_and_for_the_call_only(tiny_stage2_model_dir):
    pipe = load_joint_pipeline(tiny_stage2_model_dir)
    vae = pipe.vae
    before = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)
    with vae_tiling(vae, "auto", (1024, 1024)) as tiled:
        assert not tiled and not vae.use_tiling  # four 512 px tiles' area: not yet
    with vae_tiling(vae, "auto", (1024, 1032)) as tiled:
        assert tiled and vae.use_tiling and vae.tile_sample_min_size == 512
        assert vae.tile_latent_min_size == 512 // pipe.vae_scale_factor
    assert (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size) == before
    with vae_tiling(vae, "off", (4096, 4096)) as tiled:
        assert not tiled
    photo = PIL.Image.fromarray(np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    plain = estimate_depth(pipe, photo, num_inference_steps=1, processing_resolution=0,
                           generator=torch.Generator().manual_seed(0))  # auto: a small canvas is not tiled
    monkey = pytest.MonkeyPatch()
    monkey.setattr("jointportrait.applications.depth_estimation.VAE_TILE", 64)  # tiles smaller than the canvas
    try:
        import jointportrait.applications.depth_estimation as module

        with vae_tiling(vae, "on", (96, 96), tile=module.VAE_TILE):
            assert vae.tile_sample_min_size == 64
        tiled = estimate_depth(pipe, photo, num_inference_steps=1, processing_resolution=0, vae_tiling="on",
                               generator=torch.Generator().manual_seed(0))
    finally:
        monkey.undo()
    assert np.isfinite(tiled.depth).all() and tiled.depth.shape == (96, 96)
    assert not np.array_equal(tiled.depth, plain.depth)  # the tiled VAE blends its tiles
    with pytest.raises(ValueError, match="vae_tiling"):
        estimate_depth(pipe, photo, vae_tiling="sometimes")
