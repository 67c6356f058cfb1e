"""A training set held in memory with its VAE latents encoded once (``data.cache_latents``).

The VAE is frozen in every diffusion stage (paper Sec. 3.2, 5.1), so the latents
of a training item never change. :class:`LatentCache` reads every item once,
encodes its ``image``, ``depth`` and ``reference`` with the VAE in batches, and
serves the items with ``image_latents``, ``depth_latents`` and
``reference_latents`` added; the losses take them through
:func:`jointportrait.latent_codec.batch_latents` instead of encoding. The items
must not change from one read to the next, which holds for the project's
datasets: their random crops and reference frames are fixed per item and seed.

On a CPU the tiny demo models spend about as long in the VAE encoder and in
reading PNG files as in the UNets, so caching pays there (figures in
BENCHMARKS.md). Everything is kept in memory: meant for small sets; a
512 px SD-scale set wants its latents precomputed to disk instead.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset, default_collate

from jointportrait.latent_codec import LATENT_SOURCES, batch_latents

logger = logging.getLogger(__name__)


class LatentCache(Dataset):
    """``dataset``'s items in memory, with the latents of ``vae`` (None: the items only, e.g. for the VAE stage).

    Args:
        dataset: a map-style dataset of dict items (``image``, ``depth``, ``reference`` for latents).
        vae: the frozen ``AutoencoderKL`` of the run, or None.
        batch_size: items encoded at once.
        keys: the item keys to encode (those of :data:`LATENT_SOURCES` that the stage's loss reads).
    """

    def __init__(self, dataset: Dataset, vae=None, batch_size: int = 32,
                 keys: tuple[str, ...] = LATENT_SOURCES) -> None:
        self.items = [dataset[i] for i in range(len(dataset))]
        if vae is not None:
            keys = [k for k in LATENT_SOURCES if k in keys and k in self.items[0]]
            with torch.no_grad():
                for start in range(0, len(self.items), batch_size):
                    chunk = self.items[start:start + batch_size]
                    batch = default_collate([{k: item[k] for k in keys} for item in chunk])
                    for key in keys:
                        latents = batch_latents(vae, batch, key).float().cpu()
                        for item, z in zip(chunk, latents):
                            item[f"{key}_latents"] = z
        size = sum(v.numel() * v.element_size() for item in self.items for v in item.values() if torch.is_tensor(v))
        logger.info("cached %d training items in memory (%.1f MiB)%s", len(self.items), size / 2**20,
                    " with their VAE latents" if vae is not None else "")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return dict(self.items[index])
