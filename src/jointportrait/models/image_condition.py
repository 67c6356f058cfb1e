"""Cross-attention conditioning from the reference image (paper Sec. 3.2; DESIGN.md).

The text encoder of SD 1.5 is replaced by the CLIP image embedding of the
reference (``CLIPVisionModelWithProjection`` from a local folder), one token per
image. Without an image encoder the model uses a fixed null embedding (zeros),
which is also the "unconditional" embedding for classifier-free guidance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def null_embedding(batch: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The fixed null conditioning ``(B, 1, dim)``: zeros."""
    return torch.zeros(batch, 1, dim, device=device, dtype=dtype)


def clip_image_embedding(image_encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``(B, 1, D)`` of images ``(B, 3, H, W)`` in [-1, 1].

    Preprocessing follows CLIP: bicubic resize to the encoder's input size,
    then normalisation by the CLIP mean and standard deviation.
    """
    size = image_encoder.config.image_size
    param = next(image_encoder.parameters())
    x = (images.to(device=param.device, dtype=torch.float32) + 1.0) / 2.0  # (B, 3, H, W) in [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(param.dtype)
    return image_encoder(pixel_values=x).image_embeds.unsqueeze(1)  # (B, 1, D)


def reference_conditioning(
    image_encoder: torch.nn.Module | None,
    images: torch.Tensor,
    dim: int,
    dtype: torch.dtype,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-attention states ``(B, 1, dim)`` for references ``images``; dropped rows get the null embedding."""
    batch = images.shape[0]
    if image_encoder is None:
        return null_embedding(batch, dim, images.device, dtype)
    emb = clip_image_embedding(image_encoder, images).to(device=images.device, dtype=dtype)
    if emb.shape[-1] != dim:
        raise ValueError(f"image encoder gives {emb.shape[-1]}-d embeddings; the UNet expects {dim}")
    if keep is not None:
        emb = torch.where(keep.view(batch, 1, 1), emb, torch.zeros_like(emb))
    return emb
