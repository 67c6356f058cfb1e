"""Processing-resolution plans and the aligned-median ensemble."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from jointportrait.applications.ensemble import ensemble_depths, foreground_mask
from jointportrait.applications.resolution import plan_processing


def test_resize_plan_by_hand():
    # 50 x 70 -> longer side 64: 45.7 -> 46 x 64 -> nearest multiple of 8: 48 x 64
    plan = plan_processing((50, 70), 64, "resize")
    assert plan.scaled_hw == plan.model_hw == (48, 64)
    assert plan_processing((50, 70), 0, "resize").model_hw == (48, 72)  # input size, rounded


def test_pad_plan_round_trip():
    plan = plan_processing((50, 70), 64, "pad")
    assert plan.scaled_hw == (46, 64) and plan.model_hw == (48, 64)
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    model = plan.to_model(image)
    assert model.size == (64, 48)
    assert (np.asarray(model)[46] == np.asarray(model)[45]).all()  # edge-replicated padding
    assert plan.image_to_input(model).size == (70, 50)
    ramp = np.tile(np.linspace(0, 1, 70, dtype=np.float32), (50, 1))
    back = plan.array_to_input(plan.array_to_model(ramp))
    assert back.shape == (50, 70) and np.abs(back - ramp).max() < 0.03


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="resize_mode"):
        plan_processing((8, 8), 64, "stretch")
    with pytest.raises(ValueError, match="positive"):
        plan_processing((0, 8), 64)


def test_ensemble_of_affine_copies_recovers_the_map():
    rng = np.random.default_rng(0)
    depth = rng.random((12, 10)).astype(np.float32)
    members = np.stack([depth, 0.5 * depth + 0.2, 0.8 * depth + 0.1, 1.2 * depth - 0.1, depth])
    result = ensemble_depths(members)
    # the merged map is an exact affine copy of the truth and the aligned members agree
    assert np.corrcoef(result.depth.ravel(), depth.ravel())[0, 1] > 0.9999
    assert result.uncertainty.max() < 1e-5
    # member 2 = 0.5 d + 0.2 needs twice the scale of member 1 to be aligned
    assert result.scales[1] == pytest.approx(2 * result.scales[0], rel=1e-4)


def test_ensemble_median_resists_an_outlier_and_reports_it():
    rng = np.random.default_rng(1)
    depth = rng.random((16, 16)).astype(np.float32)
    noise = rng.random((16, 16)).astype(np.float32)
    members = np.stack([depth, depth, depth, noise])
    result = ensemble_depths(members)
    np.testing.assert_allclose(result.depth, depth, atol=0.05)
    assert result.uncertainty.mean() < 0.05


def test_ensemble_of_one_is_identity():
    d = np.random.default_rng(2).random((4, 5)).astype(np.float32)
    result = ensemble_depths(d[None])
    np.testing.assert_array_equal(result.depth, d)
    assert (result.uncertainty == 0).all()


def _portrait_members() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A face (disc, depths 0.1-0.8) on the far plane (1.0), and 4 members that differ from it by a scale
    and shift on the face only, as sampled depths do: the background stays on the far plane in each."""
    ys, xs = np.mgrid[-1:1:24j, -1:1:24j]
    face = xs**2 + ys**2 < 0.5
    truth = np.where(face, 0.1 + 0.7 * (xs**2 + ys**2) / 0.5 + 0.05 * xs, 1.0).astype(np.float32)
    members = np.stack([np.where(face, s * truth + t, 1.0) for s, t in ((1.0, 0.0), (0.6, 0.25), (1.1, -0.05),
                                                                         (0.8, 0.1))]).astype(np.float32)
    return members, truth, face


def test_foreground_mask_is_what_lies_in_front_of_the_far_plane():
    members, _, face = _portrait_members()
    members[:, 0, :] = 0.97  # decoding noise on the background stays background
    np.testing.assert_array_equal(foreground_mask(members), face)
    np.testing.assert_array_equal(foreground_mask(members[0]), face)


def test_ensemble_aligns_the_face_and_leaves_the_far_plane():
    members, truth, face = _portrait_members()
    result = ensemble_depths(members, mask=foreground_mask(members))
    # on the face the members are exact affine copies: aligned, they agree, and the merge is an affine copy
    assert result.uncertainty[face].max() < 1e-5
    assert np.corrcoef(result.depth[face], truth[face])[0, 1] > 0.9999
    np.testing.assert_array_equal(result.depth[~face], 1.0)
    assert result.uncertainty[~face].max() == 0.0
    # member 2 (0.6 d + 0.25) needs 1 / 0.6 the scale of member 1 (d) to be aligned
    assert result.scales[1] == pytest.approx(result.scales[0] / 0.6, rel=1e-4)
    # the same members aligned over every pixel: the constant background pulls the fit off the face
    everywhere = ensemble_depths(members)
    assert everywhere.uncertainty[face].max() > 0.01


def test_estimate_depth_aligns_its_ensemble_over_the_foreground():
    from types import SimpleNamespace

    from jointportrait.applications.depth_estimation import estimate_depth

    members, truth, face = _portrait_members()

    class FakePipe:  # the sampling is not under test: the pipeline "samples" the members above
        vae_scale_factor = 8
        vae = None  # a 24 px canvas is never tiled

        def __call__(self, *args, num_images_per_reference, output_domains, output_type, **kwargs):
            assert num_images_per_reference == len(members) and output_domains == ("depth",)
            assert output_type == "np"
            return SimpleNamespace(depths=members.copy())

    image = PIL.Image.new("RGB", (24, 24))
    result = estimate_depth(FakePipe(), image, ensemble_size=len(members), processing_resolution=0)
    assert result.uncertainty[face].max() < 1e-5
    assert np.corrcoef(result.depth[face], truth[face])[0, 1] > 0.9999
