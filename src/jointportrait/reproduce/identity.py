"""An identity score for the Fig. 9 comparison (paper Sec. 9: "fail to capture the identity of the reference").

The paper judges identity by eye; Table 3 uses ArcFace. No face-recognition
weights for 64 px synthetic faces can be had here, so the protocol trains its
own small recognition network on the *training* subjects of the studio set (a
softmax classifier over subjects whose penultimate layer is the embedding, as
face recognisers are trained) and scores generated images on *held-out*
subjects, whom the network never saw:

- ``similarity``: cosine similarity of the embedding of a generated image and of
  its reference image;
- ``rank1``: the share of generated images whose most similar reference, among
  the references of all held-out subjects, is their own (chance = 1 / subjects).

The same scores of real held-out pairs (another frame of the subject against its
reference) say how far the network itself can tell the subjects apart.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jointportrait.evaluation.identity import cosine_similarity


class IdentityNet(nn.Module):
    """Four strided conv blocks -> a 64-d embedding; a linear classifier over the training subjects."""

    def __init__(self, num_subjects: int, dim: int = 64) -> None:
        super().__init__()
        layers, channels = [], 3
        for width in (32, 64, 96, 128):
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.embed = nn.Linear(channels, dim)
        self.classify = nn.Linear(dim, num_subjects)

    def embedding(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in [-1, 1] -> unit embeddings ``(B, dim)``."""
        x = self.features(images).mean(dim=(2, 3))  # (B, C)
        return F.normalize(self.embed(x), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embedding(images) * 16.0)  # (B, subjects): scaled cosine logits


def train_identity_net(images: torch.Tensor, subjects: list[str], steps: int, seed: int = 0,
                       batch_size: int = 64) -> IdentityNet:
    """Fit :class:`IdentityNet` to ``images`` ``(N, 3, H, W)`` in [-1, 1] labelled by ``subjects``.

    Augmentation: horizontal flips and small shifts (the embedding must not key on framing).
    """
    names = sorted(set(subjects))
    labels = torch.tensor([names.index(s) for s in subjects])
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = IdentityNet(len(names))
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (min(batch_size, len(images)),), generator=generator)
        x = images[idx]
        flip = torch.rand(len(idx), generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=generator))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(net(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return net.eval()


@torch.no_grad()
def embed(net: IdentityNet, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Embeddings ``(N, D)`` of images ``(N, H, W, 3)`` in [0, 1] (arrays) or ``(N, 3, H, W)`` in [-1, 1]."""
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2) * 2.0 - 1.0  # (N, 3, H, W) in [-1, 1]
    return net.embedding(x).numpy()


def identity_scores(generated: np.ndarray, owners: list[int], references: np.ndarray) -> dict[str, float]:
    """``similarity`` (mean cosine to the own reference) and ``rank1`` for embeddings of generated images
    ``(N, D)`` whose reference is ``references[owners[i]]`` (``references``: ``(S, D)``, one per subject)."""
    owners_arr = np.asarray(owners)
    own = cosine_similarity(generated, references[owners_arr])
    sims = generated @ references.T / np.maximum(
        np.linalg.norm(generated, axis=1, keepdims=True) * np.linalg.norm(references, axis=1)[None], 1e-12)  # (N, S)
    return {"similarity": float(own.mean()), "rank1": float(np.mean(sims.argmax(axis=1) == owners_arr))}
