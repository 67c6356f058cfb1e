"""Training data: the studio + wild mix and a resumable, rank-aware sampler (paper Sec. 5.1).

The mix itself is :class:`jointportrait.data.datasets.MixedDataset` (each epoch holds
every source in its configured proportion, and each source's draws walk through all
its items).

The data stream is a pure function of ``(seed, sample number)``. Sample ``n`` of the
run (counted over all processes) is position ``n mod N`` of epoch ``n // N`` (``N``
items), and epoch ``e`` visits the items in an order permuted with the seed
``seed + e``. Micro-batch ``m`` of process ``r`` of ``R`` takes samples
``(m R + r) B ... (m R + r + 1) B - 1`` (batch size ``B``): the ranks take disjoint,
consecutive slices of each global batch, as with a ``DistributedSampler``, and a
batch may run across an epoch boundary (nothing is dropped). Resuming needs only
the micro-batch counter (``TrainState.micro_batches``). With ``draws=True`` the
sampler yields :class:`~jointportrait.data.datasets.Draw` keys (item, epoch, sample
number), from which the datasets draw each item's reference and crop anew.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from jointportrait.data.datasets import ClipDataset, Draw, FrameDataset, MixedDataset
from jointportrait.errors import InputError
from jointportrait.training.config import DatasetSource


class StepBatchSampler(Sampler[list]):
    """Infinite batch sampler: key lists of ``batch_size`` for process ``rank`` of ``num_replicas``.

    ``start`` skips that many micro-batches (the data position of a resumed run). Keys are item
    indices, or :class:`Draw` with ``draws=True`` (for a :class:`~jointportrait.data.datasets.DrawDataset`).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, num_replicas: int = 1,
                 start: int = 0, draws: bool = False) -> None:
        global_batch = batch_size * num_replicas
        if num_items < global_batch:
            raise InputError(f"the dataset has {num_items} items, fewer than one global batch ({global_batch})")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.num_replicas, self.start, self.draws = rank, num_replicas, start, draws
        self._order: tuple[int, list[int]] | None = None  # the last epoch's (epoch, order)

    def epoch_order(self, epoch: int) -> list[int]:
        if self._order is None or self._order[0] != epoch:
            order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed + epoch))
            self._order = (epoch, order.tolist())
        return self._order[1]

    def batch(self, micro_batch: int) -> list[int] | list[Draw]:
        """Keys of micro-batch ``micro_batch`` (counted from the start of training) for this process."""
        first = (micro_batch * self.num_replicas + self.rank) * self.batch_size  # run-wide sample number
        keys = []
        for sample in range(first, first + self.batch_size):
            epoch, position = divmod(sample, self.num_items)
            index = self.epoch_order(epoch)[position]
            keys.append(Draw(index, epoch, sample) if self.draws else index)
        return keys

    def __iter__(self) -> Iterator[list]:
        micro_batch = self.start
        while True:
            yield self.batch(micro_batch)
            micro_batch += 1


def build_datasets(sources: list[DatasetSource], resolution: int, split: str, seed: int = 0,
                   train: bool = True) -> Dataset:
    """The contract folders of ``sources`` as one dataset; several sources become a weighted mix.

    Training crops at random and draws references and crops anew for every draw; validation takes
    the centre crop.
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
