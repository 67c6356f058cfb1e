"""Training data: the studio + wild mix and a resumable, rank-aware sampler (paper Sec. 5.1).

The data order is a pure function of ``(seed, micro-batch number)``: epoch
``e`` draws its order from a generator seeded with ``seed + e`` (a permutation
for one source, a weighted draw for a mix), and micro-batch ``m`` of process
``r`` takes the ``r``-th slice of the ``m``-th global batch. Resuming therefore
needs only the micro-batch counter (``TrainState.micro_batches``), and every
process sees a disjoint part of each global batch, as with a
``DistributedSampler``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler

from jointportrait.errors import InputError
from jointportrait.training.config import DatasetSource


class StepBatchSampler(Sampler[list[int]]):
    """Infinite batch sampler: index lists of ``batch_size`` for process ``rank`` of ``num_replicas``.

    ``weights`` (one per item, optional) makes every epoch a weighted draw with
    replacement instead of a permutation; ``start`` skips that many micro-batches.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, num_replicas: int = 1,
                 start: int = 0, weights: torch.Tensor | None = None) -> None:
        global_batch = batch_size * num_replicas
        if num_items < global_batch:
            raise InputError(f"the dataset has {num_items} items, fewer than one global batch ({global_batch})")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.num_replicas, self.start = rank, num_replicas, start
        self.weights = weights
        self.batches_per_epoch = num_items // global_batch  # drop_last: every process gets full batches

    def epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        if self.weights is None:
            return torch.randperm(self.num_items, generator=generator)
        return torch.multinomial(self.weights, self.num_items, replacement=True, generator=generator)

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


def mix_weights(lengths: Sequence[int], weights: Sequence[float]) -> torch.Tensor | None:
    """Per-item sampling weights so that source ``i`` is drawn with probability ``weights[i] / sum``.

    ``None`` when there is one source (a plain permutation is used).
    """
    if len(lengths) == 1:
        return None
    total = float(sum(weights))
    return torch.cat([torch.full((n,), w / total / n, dtype=torch.float64) for n, w in zip(lengths, weights)])


def build_datasets(sources: list[DatasetSource], resolution: int, split: str) -> tuple[Dataset, torch.Tensor | None]:
    """The datasets of ``sources`` (contract folders) concatenated, and the per-item mix weights."""
    from jointportrait.data.datasets import FrameDataset

    if not sources:
        raise InputError("data.root: no dataset given (set data.root or data.datasets)")
    parts = []
    for src in sources:
        parts.append(FrameDataset(src.root, size=resolution, split=split, source=src.source))
        if len(parts[-1]) == 0:
            raise InputError(f"{src.root}: no '{split}' records" + (f" with source {src.source!r}" if src.source else ""))
    dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    return dataset, mix_weights([len(p) for p in parts], [s.weight for s in sources])
