"""Resumable, rank-aware batch sampler."""

from __future__ import annotations

import itertools

import pytest

from jointportrait.errors import InputError
from jointportrait.training.data import StepBatchSampler


def test_ranks_split_each_global_batch_and_an_epoch_visits_every_item_once():
    ranks = [StepBatchSampler(12, 2, seed=5, rank=r, num_replicas=3) for r in range(3)]
    epoch = []
    for m in range(ranks[0].batches_per_epoch):  # 12 // 6 = 2 global batches
        parts = [s.batch(m) for s in ranks]
        assert all(len(p) == 2 for p in parts)
        epoch += sum(parts, [])
    assert sorted(epoch) == list(range(12))
    assert ranks[0].batch(2) != ranks[0].batch(0) or ranks[0].batch(3) != ranks[0].batch(1)  # new epoch order


def test_start_continues_the_same_sequence():
    full = list(itertools.islice(iter(StepBatchSampler(10, 3, seed=1)), 9))
    resumed = list(itertools.islice(iter(StepBatchSampler(10, 3, seed=1, start=5)), 4))
    assert resumed == full[5:]


def test_too_small_dataset_is_an_error():
    with pytest.raises(InputError, match="fewer than one global batch"):
        StepBatchSampler(3, 2, seed=0, num_replicas=2)
