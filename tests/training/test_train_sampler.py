"""Resumable, rank-aware batch sampler, and the draws it hands the datasets."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from jointportrait.data.datasets import Draw, FrameDataset, MixedDataset
from jointportrait.errors import InputError
from jointportrait.training.data import StepBatchSampler


def test_ranks_split_each_global_batch_and_an_epoch_visits_every_item_once():
    ranks = [StepBatchSampler(12, 2, seed=5, rank=r, num_replicas=3) for r in range(3)]
    epoch = []
    for m in range(2):  # 12 items / (2 x 3) = 2 global batches per epoch
        parts = [s.batch(m) for s in ranks]
        assert all(len(p) == 2 for p in parts)
        epoch += sum(parts, [])
    assert sorted(epoch) == list(range(12))
    assert ranks[0].batch(2) != ranks[0].batch(0) or ranks[0].batch(3) != ranks[0].batch(1)  # new epoch order
    drawn = [StepBatchSampler(12, 2, seed=5, rank=r, num_replicas=3, draws=True) for r in range(3)]
    for m in range(5):  # the same items, as draws numbered consecutively over the ranks of a global batch
        keys = [s.batch(m) for s in drawn]
        assert [[k.index for k in part] for part in keys] == [s.batch(m) for s in ranks]
        assert [k.sample for part in keys for k in part] == list(range(6 * m, 6 * m + 6))
        assert all(k.epoch == k.sample // 12 for part in keys for k in part)


def test_batches_run_across_epochs_and_drop_nothing():
    sampler = StepBatchSampler(10, 3, seed=2, draws=True)
    keys = [k for m in range(10) for k in sampler.batch(m)]  # 30 samples = 3 epochs; batch 4 spans two
    assert [k.sample for k in keys] == list(range(30))
    assert Counter(k.index for k in keys) == {i: 3 for i in range(10)}
    for e in range(3):
        assert sorted(k.index for k in keys if k.epoch == e) == list(range(10))


def test_start_continues_the_same_sequence():
    for draws in (False, True):
        full = list(itertools.islice(iter(StepBatchSampler(10, 3, seed=1, draws=draws)), 9))
        resumed = list(itertools.islice(iter(StepBatchSampler(10, 3, seed=1, start=5, draws=draws)), 4))
        assert resumed == full[5:]


def test_a_resumed_run_draws_what_the_uninterrupted_run_draws(wide_dataset):
    """Micro-batches k.. of a run restarted at k (new process: new datasets, sampler start=k) equal those of
    the run that never stopped: the same items, references and random crops, tensor for tensor."""

    def loader(start: int):
        studio = FrameDataset(wide_dataset, size=24, random_crop=True, seed=9)
        wild = FrameDataset(wide_dataset, size=24, random_crop=True, seed=9)
        mixed = MixedDataset([(studio, 2.0), (wild, 1.0)], length=9, seed=9)
        return iter(DataLoader(mixed, batch_sampler=StepBatchSampler(9, 2, seed=9, start=start, draws=True)))

    k, n = 7, 6  # micro-batch 7 lies in the second epoch; the batches cross two more epoch boundaries
    uninterrupted = [batch for _, batch in zip(range(k + n), loader(0))][k:]
    resumed = [batch for _, batch in zip(range(n), loader(k))]
    for a, b in zip(uninterrupted, resumed, strict=True):
        assert a["index"].tolist() == b["index"].tolist() and a["dataset"].tolist() == b["dataset"].tolist()
        for key in ("image", "depth", "valid", "reference"):
            assert torch.equal(a[key], b[key]), key
    # and the draws do vary: the run does not repeat one pairing per item
    again = [batch for _, batch in zip(range(k + n), loader(0))]
    assert not all(torch.equal(x["reference"], y["reference"]) for x, y in zip(again[:n], again[n:2 * n]))


def test_too_small_dataset_is_an_error():
    with pytest.raises(InputError, match="fewer than one global batch"):
        StepBatchSampler(3, 2, seed=0, num_replicas=2)


def test_draw_keys_are_plain_data():
    import pickle

    key = Draw(3, 1, 40)
    assert pickle.loads(pickle.dumps(key)) == key  # DataLoader workers receive them
