"""The applications on tiny 8-channel (latent replacement) and 18-channel (mask conditioning) models."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from jointportrait.applications import depth_to_image, edit_with_depth, estimate_depth, mask_from_depth_edit
from jointportrait.applications.editing import grow_to_cells
from jointportrait.applications.sampling import native_resolution
from jointportrait.loading import load_joint_pipeline
from jointportrait.pipelines.denoising import scheduler_with_spacing

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", params=["stage1", "stage2"])
def pipe(request, tiny_model_dir, tiny_stage2_model_dir):
    return load_joint_pipeline(tiny_model_dir if request.param == "stage1" else tiny_stage2_model_dir)


@pytest.fixture(scope="module")
def photo() -> PIL.Image.Image:
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8))  # odd size and aspect


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_inpaint_mode_follows_the_model(pipe):
    expected = "conditioning" if pipe.unet.config.in_channels == 18 else "replacement"
    assert pipe.resolve_inpaint_mode() == expected
    assert pipe.resolve_inpaint_mode("replacement") == "replacement"


def test_estimate_depth_ensemble_at_input_size_and_deterministic(pipe, photo):
    assert native_resolution(pipe) == 64  # the default processing resolution of the tiny model
    a = estimate_depth(pipe, photo, num_inference_steps=2, ensemble_size=2, generator=_gen(), processing_resolution=40)
    b = estimate_depth(pipe, photo, num_inference_steps=2, ensemble_size=2, generator=_gen(), processing_resolution=40)
    assert a.depth.shape == a.uncertainty.shape == (37, 53)
    assert a.depth.dtype == np.float32 and a.depth.min() >= 0.0 and a.depth.max() <= 1.0
    assert a.members.shape == (2, 32, 40)  # 37 x 53 -> 28 x 40 -> rounded to multiples of 8
    np.testing.assert_array_equal(a.depth, b.depth)
    assert (a.uncertainty >= 0).all()


def test_estimate_depth_pad_mode_and_processing_resolution(pipe, photo):
    r = estimate_depth(pipe, photo, num_inference_steps=1, processing_resolution=30, resize_mode="pad")
    # 37 x 53 -> 21 x 30 -> padded to 24 x 32
    assert r.members.shape == (1, 24, 32) and r.depth.shape == (37, 53) and r.uncertainty is None


def test_trailing_spacing_is_temporary(pipe, photo):
    original = pipe.scheduler
    trailing = scheduler_with_spacing(original, "trailing")
    assert trailing is not original and trailing.config.timestep_spacing == "trailing"
    trailing.set_timesteps(4)
    assert int(trailing.timesteps[0]) == 999  # trailing starts at the last training step
    estimate_depth(pipe, photo, num_inference_steps=1, spacing="trailing", processing_resolution=16)
    assert pipe.scheduler is original and original.config.timestep_spacing != "trailing"


def test_depth_to_image_sizes(pipe, photo):
    depth = np.tile(np.linspace(0, 1, 53, dtype=np.float32), (37, 1))
    images = depth_to_image(pipe, depth, photo, num_samples=2, num_inference_steps=1, generator=_gen(),
                            processing_resolution=32)
    assert [im.size for im in images] == [(53, 37), (53, 37)]


def test_edit_changes_only_inside_the_mask(pipe, photo):
    depth = np.tile(np.linspace(0, 1, 53, dtype=np.float32), (37, 1))
    edited = depth.copy()
    edited[10:20, 20:30] -= 0.3  # pull a patch toward the camera
    mask = mask_from_depth_edit(depth, edited, grow=2)
    assert mask[10:20, 20:30].all() and not mask[30:, :].any()
    result = edit_with_depth(pipe, photo, edited, mask, num_inference_steps=2, generator=_gen(),
                             processing_resolution=32)
    before, after = np.asarray(photo), np.asarray(result.image)
    assert after.shape == before.shape
    np.testing.assert_array_equal(after[~mask], before[~mask])
    assert np.abs(after[mask].astype(int) - before[mask]).mean() > 1.0  # the model did regenerate the region


def test_grow_to_cells_by_hand():
    mask = np.zeros((16, 16), bool)
    mask[9, 2] = True  # one pixel in cell (1, 0)
    grown = grow_to_cells(mask, 8)
    assert grown[8:16, 0:8].all() and grown.sum() == 64


def test_edit_follows_the_edited_depth(pipe, photo, monkeypatch):
    """The edited depth reaches the denoiser as the known depth (mask 0) and changes what is regenerated."""
    import copy

    edit_pipe = copy.deepcopy(pipe)
    # the known depth latent: a stage-2 model's masked-depth channels, a stage-1 model's depth half
    depth_half = slice(14, 18) if edit_pipe.is_inpainting_model else slice(4, 8)
    with torch.no_grad():  # the tiny models are freshly widened (zero weights there): make them read the depth
        edit_pipe.unet.conv_in.weight[:, depth_half].normal_(0, 2.0, generator=_gen(3))
    seen = []
    forward = edit_pipe.joint_denoiser.forward
    monkeypatch.setattr(edit_pipe.joint_denoiser, "forward",
                        lambda sample, *a, **k: seen.append(sample.clone()) or forward(sample, *a, **k))
    depth = np.tile(np.linspace(1, 2, 53, dtype=np.float32), (37, 1))
    mask = np.zeros((37, 53), bool)
    mask[8:30, 10:45] = True
    near, far = depth.copy(), depth.copy()
    near[8:30, 10:45] -= 0.4
    far[8:30, 10:45] += 0.4
    results = {}
    for name, edited in (("near", near), ("far", far), ("near again", near)):
        seen.clear()
        results[name] = np.asarray(edit_with_depth(edit_pipe, photo, edited, mask, num_inference_steps=2,
                                                   generator=_gen(), processing_resolution=32).image).astype(int)
        results[name + " inputs"] = [s.clone() for s in seen]
    a, b = results["near inputs"][0][:, depth_half], results["far inputs"][0][:, depth_half]
    assert (a - b).abs().max() > 1e-3  # the model is given the edited depth, not the original one
    if edit_pipe.is_inpainting_model:
        assert float(results["near inputs"][0][:, 9].abs().max()) == 0.0  # depth mask 0: the depth is kept
    # another depth, another region (an edit that ignored the depth gives exactly 0; the random tiny VAE
    # decodes most latents to near-flat colours, so the change is a fraction of a grey level on average)
    assert np.abs(results["near"] - results["far"])[mask].mean() > 0.25
    np.testing.assert_array_equal(results["near"], results["near again"])
    np.testing.assert_array_equal(results["near"][~mask], results["far"][~mask])
