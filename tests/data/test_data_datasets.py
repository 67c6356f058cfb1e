"""Training datasets: the tensor contract, paired resizing, references, clips, mixing and bad data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from jointportrait.data.datasets import ClipDataset, FrameDataset, MixedDataset, resize_and_crop
from jointportrait.depth_codec import normalize_depth
from jointportrait.errors import InputError, MissingPathError


def test_frame_sample_follows_the_contract(still_dataset):
    ds = FrameDataset(still_dataset, size=16)
    sample = ds[2]
    assert sample["image"].shape == (3, 16, 16) and sample["reference"].shape == (3, 16, 16)
    for key in ("depth", "valid", "skin_mask", "depth_raw"):
        assert sample[key].shape == (1, 16, 16)
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1
    valid = sample["valid"].bool()
    assert valid.any() and (sample["depth_raw"][~valid] == 0).all() and (sample["depth_raw"][valid] > 0).all()
    torch.testing.assert_close(sample["depth"], normalize_depth(sample["depth_raw"][None], sample["valid"][None])[0])
    assert (sample["depth"][~valid] == 1).all()
    assert sample["subject"] == ds.records[2].subject and sample["index"] == 2
    assert not (sample["skin_mask"].bool() & ~valid).any()


def test_reference_is_another_frame_of_the_same_subject(still_dataset):
    ds = FrameDataset(still_dataset, size=32)
    for i in range(len(ds)):
        j = ds.reference_index(i, np.random.default_rng([0, i]))
        assert j != i and ds.records[j].subject == ds.records[i].subject
        torch.testing.assert_close(ds[i]["reference"], ds[j]["image"])


def test_seeded_random_crops_are_reproducible(still_dataset):
    a = FrameDataset(still_dataset, size=24, random_crop=True, seed=7)
    b = FrameDataset(still_dataset, size=24, random_crop=True, seed=7)
    assert all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(3))
    split = FrameDataset(still_dataset, size=16, split="train")
    assert {r.split for r in split.records} == {"train"}
    with pytest.raises(InputError, match="multiple of 8"):
        FrameDataset(still_dataset, size=20)


def test_paired_resize_uses_masked_depth_average():
    # 4x8 frame -> short side 2: 2x2 blocks; a block half covered keeps the mean of its covered pixels
    depth = np.array([[1, 3, 5, 5, 0, 0, 2, 2]] * 4, np.float32)
    valid = depth > 0
    frame = {"image": np.zeros((4, 8, 3), np.uint8), "depth": depth, "valid": valid, "skin": valid.copy()}
    out = resize_and_crop(frame, 2, (0.5, 0, 1))  # scaled to 2x4, then columns 1..2
    np.testing.assert_allclose(out["depth"], [[5, 0], [5, 0]])
    assert out["valid"].tolist() == [[True, False], [True, False]]
    out = resize_and_crop(frame, 2, (0.5, 0, 0))
    np.testing.assert_allclose(out["depth"], [[2, 5], [2, 5]])


def test_clip_windows(video_dataset):
    ds = ClipDataset(video_dataset, size=16, num_frames=5, num_motion_frames=2, stride=1)
    assert len(ds) == 2 * (8 - 7 + 1)
    sample = ds[1]
    assert sample["image"].shape == (5, 3, 16, 16) and sample["motion_image"].shape == (2, 3, 16, 16)
    assert sample["depth"].shape == (5, 1, 16, 16) and sample["reference"].shape == (3, 16, 16)
    name, start = ds.windows[1]
    frames = ds.clips[name][start : start + 7]
    assert [r.frame for r in frames] == list(range(start, start + 7))
    first = FrameDataset(video_dataset, size=16)
    k = next(i for i, r in enumerate(first.records) if r.clip == name and r.frame == start + 2)
    torch.testing.assert_close(sample["image"][0], first[k]["image"])
    with pytest.raises(InputError, match="consecutive frames"):
        ClipDataset(video_dataset, size=16, num_frames=14, num_motion_frames=4)


def test_mixed_dataset_follows_weights(still_dataset, video_dataset):
    a, b = FrameDataset(still_dataset, size=16), FrameDataset(video_dataset, size=16)
    mixed = MixedDataset([(a, 3.0), (b, 1.0)], length=4000, seed=0)
    picks = np.array([mixed.locate(i)[0] for i in range(4000)])
    assert abs(picks.mean() - 0.25) < 0.03
    assert mixed.locate(17) == MixedDataset([(a, 3.0), (b, 1.0)], length=4000, seed=0).locate(17)
    only_b = MixedDataset([(a, 0.0), (b, 1.0)], length=50)
    assert all(only_b.locate(i)[0] == 1 for i in range(50))
    assert mixed[5]["dataset"] == mixed.locate(5)[0]
    with pytest.raises(InputError, match="weights"):
        MixedDataset([(a, -1.0)])


def test_nan_inside_mask_is_an_error_naming_file_and_line(tmp_path, still_dataset):
    root = tmp_path / "copy"
    shutil.copytree(still_dataset, root)
    lines = (root / "manifest.jsonl").read_text().splitlines()
    target = json.loads(lines[1])["depth"]
    depth = np.load(root / target)
    outside = depth == 0
    depth[outside] = np.nan  # NaN outside the mask is allowed
    np.save(root / target, depth)
    ds = FrameDataset(root, size=16)
    assert torch.isfinite(ds[1]["depth_raw"]).all()
    depth[np.unravel_index(np.argmax(depth > 0), depth.shape)] = np.inf
    np.save(root / target, depth)
    with pytest.raises(InputError, match=rf"manifest.jsonl line 2: depth .*{target.split('/')[-1]} has NaN/inf"):
        ds[1]


def test_file_removed_after_reading_the_manifest_names_file_and_line(tmp_path, still_dataset):
    root = tmp_path / "copy"
    shutil.copytree(still_dataset, root)
    ds = FrameDataset(root, size=16)
    ds.records[2].image.unlink()
    with pytest.raises(MissingPathError, match=r"manifest.jsonl line 3: .*s0001_f0000.png"):
        ds[2]
