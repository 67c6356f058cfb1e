"""Training datasets: the tensor contract, paired resizing, references, clips, mixing and bad data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from jointportrait.data.datasets import (
    ClipDataset,
    Draw,
    FrameDataset,
    MixedDataset,
    apportion,
    crop_box,
    resize_and_crop,
)
from jointportrait.depth_codec import normalize_depth
from jointportrait.errors import InputError, MissingPathError
from jointportrait.training.data import StepBatchSampler


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


def test_mixed_dataset_holds_each_source_in_proportion_every_epoch(still_dataset, video_dataset):
    a, b = FrameDataset(still_dataset, size=16), FrameDataset(video_dataset, size=16)
    mixed = MixedDataset([(a, 3.0), (b, 1.0)], length=4000, seed=0)
    assert mixed.quotas == [3000, 1000]
    for epoch in (0, 1, 7):
        picks = np.array([mixed.route(Draw(p, epoch, epoch * 4000 + p))[0] for p in range(4000)])
        assert (picks == 1).sum() == 1000  # exactly the configured share, not about it
    assert mixed.route(Draw(17, 2, 8017)) == MixedDataset([(a, 3.0), (b, 1.0)], length=4000, seed=0).route(
        Draw(17, 2, 8017))
    only_b = MixedDataset([(a, 0.0), (b, 1.0)], length=50)
    assert all(only_b.route(i)[0] == 1 for i in range(50))
    assert mixed[5]["dataset"] == mixed.route(5)[0]
    sample = mixed[Draw(5, 3, 12005)]
    assert sample["dataset"] == mixed.route(Draw(5, 3, 12005))[0] and sample["image"].shape == (3, 16, 16)
    assert apportion(7, [1.0, 1.0, 1.0]) == [3, 2, 2] and apportion(10, [0.0, 2.0, 3.0]) == [0, 4, 6]
    with pytest.raises(InputError, match="weights"):
        MixedDataset([(a, -1.0)])


class _Range(torch.utils.data.Dataset):
    """A stand-in source of ``n`` items (nothing to read): the mix's bookkeeping is under test."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize("studio,wild", [(3000, 3000), (10000, 2000)])
def test_the_mix_reaches_every_item(studio, wild):
    """The issue's two cases: the old index-tied mix reached 63 % of each set (3000 + 3000) and 45 % of the
    studio set (10000 + 2000, mixed 1 : 1); here every pass over a source visits each of its items once."""
    mixed = MixedDataset([(_Range(studio), 1.0), (_Range(wild), 1.0)], seed=3)
    n = len(mixed)
    sampler = StepBatchSampler(n, 48, seed=3, draws=True)
    per_epoch = n // 48
    counts = [np.zeros((2, max(studio, wild)), int) for _ in range(2)]
    for m in range(2 * per_epoch):  # two epochs
        for key in sampler.batch(m):
            k, item = mixed.route(key)
            counts[key.epoch][k, item] += 1
    for epoch_counts in counts:  # each epoch: exactly half of the draws from each source
        assert epoch_counts[0].sum() == epoch_counts[1].sum() == n // 2
    if studio == wild:  # a source's share equals its size: every item exactly once per epoch
        assert all((c[:, :studio] == 1).all() for c in counts)
    else:  # 6000 draws per epoch: the wild set is passed 3 times, the studio set once in two epochs
        assert all((c[1, :wild] == 3).all() for c in counts)
        assert (counts[0][0, :studio] <= 1).all() and (counts[0][0, :studio].sum() == n // 2)
        assert ((counts[0] + counts[1])[0, :studio] >= 1).all()


def test_each_draw_of_an_item_picks_its_reference_and_crop_anew(wide_dataset, video_dataset):
    frames = FrameDataset(video_dataset, size=16, seed=4)  # 8 frames per subject: 7 candidate references
    others = {j for j in frames.by_subject[frames.records[0].subject] if j != 0}
    refs = {frames.pair(Draw(0, e, e * len(frames) + 5)).reference for e in range(60)}
    assert refs == others
    first = frames[Draw(0, 0, 5)]
    for j in others:  # the reference tensor is the chosen frame's image
        e = next(e for e in range(60) if frames.pair(Draw(0, e, e * len(frames) + 5)).reference == j)
        torch.testing.assert_close(frames[Draw(0, e, e * len(frames) + 5)]["reference"], frames[j]["image"])
    torch.testing.assert_close(first["image"], frames[0]["image"])  # no random crop: the frame is the same
    crops = FrameDataset(wide_dataset, size=24, random_crop=True, seed=4)  # 24 x 32 frames: 9 windows
    windows = {crops.pair(Draw(1, e, 100 * e)).crop for e in range(60)}
    assert len(windows) == 60
    boxes = {crop_box(24, 32, 24, c)[1:] for c in windows}
    assert {left for _, left in boxes} == set(range(9)) and {top for top, _ in boxes} == {0}
    # a draw is a function of (seed, item, sample) only: a fresh dataset repeats it
    again = FrameDataset(wide_dataset, size=24, random_crop=True, seed=4)
    for key in (Draw(1, 0, 0), Draw(1, 3, 77), Draw(4, 1, 9)):
        a, b = crops[key], again[key]
        assert all(torch.equal(a[k], b[k]) for k in ("image", "depth", "reference", "valid"))
    assert not torch.equal(crops[Draw(1, 0, 0)]["image"], crops[Draw(1, 0, 1)]["image"]) or not torch.equal(
        crops[Draw(1, 0, 0)]["reference"], crops[Draw(1, 0, 1)]["reference"])


def test_clip_draws_pick_reference_and_crop_anew(video_dataset):
    clips = ClipDataset(video_dataset, size=16, num_frames=2, num_motion_frames=1, stride=1, seed=2)
    refs = {clips[Draw(0, e, e * 10)]["reference"].sum().item() for e in range(30)}
    assert len(refs) > 2  # 5 frames of the subject lie outside a 3-frame window
    torch.testing.assert_close(clips[0]["reference"], clips[0]["reference"])  # an int index: one fixed draw


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
