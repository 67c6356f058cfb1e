"""Properties of the stage-2 mask sampler (paper Sec. 4) for generated sizes, seeds and task weights."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from jointportrait.training.masks import TASKS, MaskSampler, box_mask, brush_mask, face_mask

SIDES = st.integers(1, 24)
SEEDS = st.integers(0, 2**32 - 1)


def _binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


@given(SIDES, SIDES, SEEDS, st.floats(0.05, 0.5), st.floats(0.0, 0.5))
def test_box_mask_is_one_box_of_the_asked_size(h, w, seed, min_frac, extra):
    max_frac = min(1.0, min_frac + extra)
    mask = box_mask(h, w, torch.Generator().manual_seed(seed), min_frac, max_frac)
    assert mask.shape == (1, h, w) and _binary(mask)
    rows, cols = mask[0].any(dim=1), mask[0].any(dim=0)
    bh, bw = int(rows.sum()), int(cols.sum())
    assert mask.sum() == bh * bw  # filled rectangle
    assert bool(rows[rows.nonzero()[0, 0]:][:bh].all()) and bool(cols[cols.nonzero()[0, 0]:][:bw].all())  # contiguous
    for side, size in ((h, bh), (w, bw)):
        assert max(1, round(min_frac * side)) <= size <= max(1, round(max_frac * side))


@given(SIDES, SIDES, SEEDS)
def test_brush_mask_is_binary_and_not_empty(h, w, seed):
    mask = brush_mask(h, w, torch.Generator().manual_seed(seed))
    assert mask.shape == (1, h, w) and _binary(mask) and mask.sum() >= 1


@given(st.integers(2, 20), st.integers(2, 20), SEEDS, st.data())
def test_face_mask_contains_the_face_region(h, w, seed, data):
    region = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=w, max_size=w), min_size=h,
                                             max_size=h)), dtype=torch.float32)[None]
    mask = face_mask(region, torch.Generator().manual_seed(seed))
    assert mask.shape == (1, h, w) and _binary(mask) and mask.sum() >= 1
    assert bool((mask >= region).all())  # grown, never shrunk


@given(st.dictionaries(st.sampled_from(sorted(TASKS)), st.floats(0.0, 3.0), min_size=1).filter(
    lambda d: sum(d.values()) > 0), st.integers(1, 5), st.integers(1, 16), SEEDS)
def test_sampled_masks_follow_their_task(tasks, batch_size, side, seed):
    batch = {"image": torch.zeros(batch_size, 3, side, side), "valid": torch.ones(batch_size, 1, side, side),
             "skin_mask": torch.ones(batch_size, 1, side, side)}
    sampler = MaskSampler(tasks, {"box": 1.0, "brush": 1.0, "face": 1.0})
    masks, names = sampler.sample(batch, torch.Generator().manual_seed(seed))
    again, names_again = sampler.sample(batch, torch.Generator().manual_seed(seed))
    assert names == names_again and all(torch.equal(masks[k], again[k]) for k in masks)  # pure in the generator
    assert all(tasks[n] > 0 for n in names)
    for i, name in enumerate(names):
        rgb, depth = masks["rgb_mask"][i], masks["depth_mask"][i]
        assert rgb.shape == depth.shape == (1, side, side) and _binary(rgb) and _binary(depth)
        expected = {"depth_estimation": (0, 1), "depth_to_image": (1, 0), "joint_generation": (1, 1)}
        if name in expected:
            assert (rgb == expected[name][0]).all() and (depth == expected[name][1]).all()
        elif name == "rgb_editing":
            assert rgb.sum() >= 1 and (depth == 0).all()
        else:
            assert rgb.sum() >= 1 and torch.equal(rgb, depth)
