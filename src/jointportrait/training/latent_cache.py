"""Training data held in memory with its VAE latents encoded once (``data.cache_latents``).

The VAE is frozen in every diffusion stage (paper Sec. 3.2, 5.1), so the latent
of a training frame never changes. The caches serve items with
``image_latents``, ``depth_latents`` and ``reference_latents`` added; the
losses take them through :func:`jointportrait.latent_codec.batch_latents`
instead of encoding.

Per frame, not per pair. The project's datasets draw each item's reference
frame (and crop) anew at every draw (:mod:`jointportrait.data.datasets`), so a
cache of finished items would freeze one pairing for the whole run.
:class:`FrameLatentCache` instead holds every frame once (its tensors and the
latents of its image and depth) and assembles each draw from the dataset's own
:meth:`~jointportrait.data.datasets.FrameDataset.pair`: the frame's entries plus
the reference frame's image and image latent. That is exact (the same tensors
as reading the files, the latents of the same pixels) as long as a frame's
crop does not depend on the draw, which is the case when the frames are stored
at the training resolution (one possible crop: the demo, ``jointportrait
synth`` data) or without random crops. Caching every random crop of larger
frames would multiply the memory by the number of crop positions (65 for a
576 x 512 frame cut to 512), and cropping a cached full-frame latent is not
the latent of the crop (the encoder's receptive field crosses the crop edge),
so such sets are refused with a one-line error: train them uncached.

:class:`LatentCache` keeps the older item cache for datasets whose items are
fixed per index (in-memory datasets passed to ``train``).

On a CPU the tiny demo models spend about as long in the VAE encoder and in
reading PNG files as in the UNets, so caching pays there (figures in
BENCHMARKS.md). Everything is kept in memory: meant for small sets; a
512 px SD-scale set wants its latents precomputed to disk instead.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset, default_collate

from jointportrait.data.datasets import Draw, DrawDataset, FrameDataset, MixedDataset
from jointportrait.errors import InputError
from jointportrait.latent_codec import LATENT_SOURCES, batch_latents

logger = logging.getLogger(__name__)


def _encode_in_place(items: list[dict], vae, keys: tuple[str, ...], batch_size: int) -> None:
    """Add ``<key>_latents`` of ``vae`` to every item, encoding ``batch_size`` items at once."""
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = default_collate([{k: item[k] for k in keys} for item in chunk])
            for key in keys:
                latents = batch_latents(vae, batch, key).float().cpu()
                for item, z in zip(chunk, latents):
                    item[f"{key}_latents"] = z


def _log_size(what: str, count: int, items: list[dict], with_latents: bool) -> None:
    size = sum(v.numel() * v.element_size() for item in items for v in item.values() if torch.is_tensor(v))
    logger.info("cached %d %s in memory (%.1f MiB)%s", count, what, size / 2**20,
                " with their VAE latents" if with_latents else "")


def cache_latents(dataset: Dataset, vae=None, batch_size: int = 32) -> Dataset:
    """The cache for ``dataset``: per frame for the project's frame datasets and their mixes
    (:class:`FrameLatentCache`), per item for any other dataset (:class:`LatentCache`)."""
    if isinstance(dataset, (FrameDataset, MixedDataset)):
        return FrameLatentCache(dataset, vae, batch_size)
    if isinstance(dataset, DrawDataset):
        raise InputError(f"data.cache_latents: {type(dataset).__name__} is not supported (frame datasets only)")
    return LatentCache(dataset, vae, batch_size)


class FrameLatentCache(DrawDataset):
    """The frames of a :class:`FrameDataset` (or of each source of a :class:`MixedDataset` of them) in
    memory with the latents of ``vae``, served draw by draw exactly as the dataset serves them.

    Args:
        dataset: a :class:`FrameDataset` or a :class:`MixedDataset` whose sources are all FrameDatasets.
        vae: the frozen ``AutoencoderKL`` of the run, or None (the frames only, e.g. for the VAE stage).
        batch_size: frames encoded at once.
    """

    def __init__(self, dataset: FrameDataset | MixedDataset, vae=None, batch_size: int = 32) -> None:
        self.dataset = dataset
        self.sources = dataset.datasets if isinstance(dataset, MixedDataset) else [dataset]
        if not all(isinstance(s, FrameDataset) for s in self.sources):
            raise InputError("data.cache_latents: a mix can be cached only when every source is a FrameDataset")
        self.frames = [[source.fixed_frame(i) for i in range(len(source))] for source in self.sources]
        every = [frame for frames in self.frames for frame in frames]
        if vae is not None:
            _encode_in_place(every, vae, ("image", "depth"), batch_size)
        self.with_latents = vae is not None
        _log_size("training frames", len(every), every, self.with_latents)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | Draw) -> dict:
        k, sub = self.dataset.route(key) if isinstance(self.dataset, MixedDataset) else (0, key)
        source = self.sources[k]
        pair = source.pair(sub)
        frame, reference = self.frames[k][pair.frame], self.frames[k][pair.reference]
        sample = dict(frame)
        sample["reference"] = reference["image"]
        if self.with_latents:
            sample["reference_latents"] = reference["image_latents"]
        sample["subject"] = source.records[pair.frame].subject
        sample["index"] = pair.frame
        if isinstance(self.dataset, MixedDataset):
            sample["dataset"] = k
        return sample


class LatentCache(Dataset):
    """``dataset``'s items in memory, with the latents of ``vae`` (None: the items only), for datasets whose
    items are fixed per index.

    Args:
        dataset: a map-style dataset of dict items (``image``, ``depth``, ``reference`` for latents).
        vae: the frozen ``AutoencoderKL`` of the run, or None.
        batch_size: items encoded at once.
    """

    def __init__(self, dataset: Dataset, vae=None, batch_size: int = 32) -> None:
        self.items = [dataset[i] for i in range(len(dataset))]
        if vae is not None:
            _encode_in_place(self.items, vae, tuple(k for k in LATENT_SOURCES if k in self.items[0]), batch_size)
        _log_size("training items", len(self.items), self.items, vae is not None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return dict(self.items[index])
