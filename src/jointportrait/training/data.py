"""Training data: the studio + wild mix and a resumable, rank-aware sampler (paper Sec. 5.1).

The mix itself is :class:`jointportrait.data.datasets.MixedDataset` (item ``i``
comes from source ``k`` with probability ``w_k / sum(w)``).

The data order is a pure function of ``(seed, micro-batch number)``: epoch
``e`` permutes the items with a generator seeded with ``seed + e``, and micro-batch ``m`` of process
``r`` takes the ``r``-th slice of the ``m``-th global batch. Resuming therefore
needs only the micro-batch counter (``TrainState.micro_batches``), and every
process sees a disjoint part of each global batch, as with a
``DistributedSampler``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from jointportrait.data.datasets import ClipDataset, FrameDataset, MixedDataset
from jointportrait.errors import InputError
from jointportrait.training.config import DatasetSource


class StepBatchSampler(Sampler[list[int]]):
    """Infinite batch sampler: index lists of ``batch_size`` for process ``rank`` of ``num_replicas``.

    ``start`` skips that many micro-batches (the data position of a resumed run).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, num_replicas: int = 1,
                 start: int = 0) -> None:
        global_batch = batch_size * num_replicas
        if num_items < global_batch:
            raise InputError(f"the dataset has {num_items} items, fewer than one global batch ({global_batch})")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.num_replicas, self.start = rank, num_replicas, start
        self.batches_per_epoch = num_items // global_batch  # drop_last: every process gets full batches

    def epoch_order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed + epoch))

    def batch(self, micro_batch: int) -> list[int]:
        """Indices of micro-batch ``micro_batch`` (counted from the start of training) for this process."""
        epoch, position = divmod(micro_batch, self.batches_per_epoch)
        first = (position * self.num_replicas + self.rank) * self.batch_size
        return self.epoch_order(epoch)[first:first + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        micro_batch = self.start
        while True:
            yield self.batch(micro_batch)
            micro_batch += 1


def build_datasets(sources: list[DatasetSource], resolution: int, split: str, seed: int = 0,
                   train: bool = True) -> Dataset:
    """The contract folders of ``sources`` as one dataset; several sources become a weighted mix.

    Training crops at random (fixed per item and seed); validation takes the centre.
    """
    if not sources:
        raise InputError("data.root: no dataset given (set data.root or data.datasets)")
    parts = [FrameDataset(src.root, size=resolution, split=split, source=src.source, random_crop=train, seed=seed)
             for src in sources]
    if len(parts) == 1:
        return parts[0]
    return MixedDataset([(p, src.weight) for p, src in zip(parts, sources)], seed=seed)


def build_clip_datasets(sources: list[DatasetSource], resolution: int, split: str, seed: int, num_frames: int,
                        motion_frames: int, stride: int | None = None, train: bool = True) -> Dataset:
    """Clip windows of ``motion_frames + num_frames`` consecutive frames from ``sources`` (stage 3, Sec. 5.1);
    several sources become a weighted mix. Training crops at random (one crop per window)."""
    if not sources:
        raise InputError("data.root: no dataset given (set data.root or data.datasets)")
    parts = [ClipDataset(src.root, size=resolution, num_frames=num_frames, num_motion_frames=motion_frames,
                         stride=stride, split=split, source=src.source, random_crop=train, seed=seed)
             for src in sources]
    if len(parts) == 1:
        return parts[0]
    return MixedDataset([(p, src.weight) for p, src in zip(parts, sources)], seed=seed)
