"""Stage-2 mask sampler: the paper's asymmetric domain masks and the spatial editing masks."""

from __future__ import annotations

import pytest
import torch

from jointportrait.training.masks import (
    TASKS,
    MaskSampler,
    _segment_distance,
    box_mask,
    brush_mask,
    face_mask,
)


def _batch(b=2, size=32, skin=None):
    valid = torch.zeros(b, 1, size, size)
    valid[:, :, 8:24, 10:22] = 1
    return {"image": torch.zeros(b, 3, size, size), "valid": valid,
            "skin_mask": torch.ones(b, 1, size, size) if skin is None else skin}


@pytest.mark.parametrize("task, rgb, depth", [
    ("depth_estimation", 0.0, 1.0), ("depth_to_image", 1.0, 0.0), ("joint_generation", 1.0, 1.0)])
def test_domain_tasks_are_constant_masks(task, rgb, depth):
    masks, names = MaskSampler({task: 1.0}, {"box": 1.0}).sample(_batch(), torch.Generator().manual_seed(0))
    assert names == [task, task]
    assert masks["rgb_mask"].shape == (2, 1, 32, 32)
    assert torch.all(masks["rgb_mask"] == rgb) and torch.all(masks["depth_mask"] == depth)


def test_editing_tasks_use_one_spatial_mask():
    gen = torch.Generator().manual_seed(1)
    masks, _ = MaskSampler({"rgb_editing": 1.0}, {"box": 1.0}).sample(_batch(), gen)
    assert torch.all(masks["depth_mask"] == 0)  # depth is given
    area = masks["rgb_mask"].mean(dim=(1, 2, 3))
    assert torch.all((area > 0) & (area < 1))
    masks, _ = MaskSampler({"joint_editing": 1.0}, {"brush": 1.0}).sample(_batch(), gen)
    assert torch.equal(masks["rgb_mask"], masks["depth_mask"])
    assert set(TASKS) == {"depth_estimation", "depth_to_image", "joint_generation", "rgb_editing", "joint_editing"}


def test_task_frequencies_follow_the_weights():
    sampler = MaskSampler({"depth_estimation": 3.0, "depth_to_image": 1.0}, {"box": 1.0})
    _, names = sampler.sample(_batch(b=4000, size=8), torch.Generator().manual_seed(0))
    share = names.count("depth_estimation") / len(names)
    assert abs(share - 0.75) < 0.03  # binomial std at n=4000 is 0.007


def test_box_mask_is_one_filled_rectangle_of_bounded_size():
    for seed in range(20):
        m = box_mask(40, 50, torch.Generator().manual_seed(seed))[0]
        rows, cols = torch.nonzero(m.any(1)).flatten(), torch.nonzero(m.any(0)).flatten()
        h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert m.sum() == h * w  # filled
        assert 0.2 * 40 - 1 <= h <= 0.6 * 40 + 1 and 0.2 * 50 - 1 <= w <= 0.6 * 50 + 1


def test_segment_distance_by_hand():
    pts = torch.tensor([[0.0, 1.0], [3.0, 0.0], [1.0, -2.0], [-3.0, 4.0]])
    d = _segment_distance(pts, torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.0]))
    assert torch.allclose(d, torch.tensor([1.0, 1.0, 2.0, 5.0]))


def test_brush_mask_is_binary_and_partial():
    m = brush_mask(48, 48, torch.Generator().manual_seed(3))
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert 0 < m.mean() < 1


def test_face_mask_grows_the_region_by_a_square_margin():
    region = torch.zeros(1, 41, 41)
    region[0, 20, 20] = 1
    assert torch.equal(face_mask(region, max_margin=0.0), region)
    grown = face_mask(region, torch.Generator().manual_seed(0), max_margin=0.2)[0]
    rows, cols = torch.nonzero(grown.any(1)).flatten(), torch.nonzero(grown.any(0)).flatten()
    side = int(rows[-1] - rows[0] + 1)
    assert side == int(cols[-1] - cols[0] + 1) and side % 2 == 1 and side <= 2 * 8 + 1
    assert grown.sum() == side * side and grown[20, 20] == 1
    assert face_mask(torch.zeros(1, 16, 16), torch.Generator().manual_seed(0)).sum() > 0  # box fallback


def test_face_region_prefers_the_skin_mask():
    skin = torch.zeros(1, 1, 32, 32)
    skin[..., 2:5, 2:5] = 1
    sampler = MaskSampler({"rgb_editing": 1.0}, {"face": 1.0})
    masks, _ = sampler.sample(_batch(b=1, skin=skin), torch.Generator().manual_seed(0))
    assert masks["rgb_mask"][0, 0, 3, 3] == 1 and masks["rgb_mask"][0, 0, 16, 16] == 0
    masks, _ = sampler.sample(_batch(b=1), torch.Generator().manual_seed(0))  # skin all ones -> valid region
    assert masks["rgb_mask"][0, 0, 16, 16] == 1


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown task"):
        MaskSampler({"paint": 1.0}, {"box": 1.0})
