"""HyperIQA: blind image quality of generated frames (paper Sec. 5.5, Table 3 "Image Quality").

Su et al., "Blindly Assess Image Quality in the Wild Guided by a Self-Adaptive
Hyper Network", CVPR 2020. The paper's text names HyperIQA, while the
reference it cites for it ([69], Zhang et al. CVPR 2023) is LIQE; we follow
the text (its 43-54 scores fit HyperIQA's 0-100 KonIQ scale).

The network, with the parameter names of the authors' ``models.py`` so that
their KonIQ-10k checkpoint (``koniq_pretrained.pkl``, a ``torch.save``'d
state dict) loads one to one (:meth:`HyperIQA.from_file`):

* ``res``: a ResNet-50 (``res.conv1 ... res.layer4``, no classifier) with
  four local-distortion-aware heads. After layer ``k`` (k = 1, 2, 3), a 1x1
  conv (``res.lda{k}_pool.0``, 256/512/1024 -> 16/32/64 channels) and a 7x7
  average pool, flattened, and a linear layer (``res.lda{k}_fc``) to 16
  values; after layer 4 a 7x7 average pool and ``res.lda4_fc`` (2048 -> 176).
  Their concatenation is the 224-d input ``v`` of the target network.
* the hyper network: ``conv1`` (1x1 convs 2048 -> 1024 -> 512 -> 112, ReLU)
  on layer 4's ``7 x 7`` map ``h``; ``fc{i}w_conv`` (3x3 convs, i = 1..4)
  turn ``h`` into the weights of target layer ``i`` (reshaped to
  ``(f_i, f_{i-1})``), ``fc{i}b_fc`` (linear on the spatial mean of ``h``)
  into its bias; ``fc5w_fc`` / ``fc5b_fc`` give the last layer's.
* the target network, with those per-image weights (sizes 224 -> 112 -> 56
  -> 28 -> 14 -> 1)::

      q = W5 s(W4 s(W3 s(W2 s(W1 v + b1) + b2) + b3) + b4) + b5,   s = sigmoid

The score of an image is the mean of ``q`` over crops. The authors' demo resizes
to 512 x 384 (height x width, bilinear) and averages 10 random 224 x 224 crops,
ImageNet mean/std normalisation; :func:`crop_offsets` replaces the random
crops by a fixed 5 x 2 grid over the same range of positions, so a score is
reproducible. KonIQ-trained scores lie in about 0-100, higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jointportrait.evaluation._weights import load_into, load_state_dict_file

WEIGHTS_NAME = "HyperIQA weights in the authors' layout (e.g. koniq_pretrained.pkl)"
RESIZE = (512, 384)  # (height, width) before cropping, as the authors' demo
CROP = 224
NUM_CROPS = 10
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class HyperIQAConfig:
    """Sizes of the published model: ``HyperNet(16, 112, 224, 112, 56, 28, 14, 7)`` in the authors' code."""

    lda_out_channels: int = 16
    hyper_in_channels: int = 112
    target_in_size: int = 224
    target_fc_sizes: tuple[int, int, int, int] = (112, 56, 28, 14)
    feature_size: int = 7


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def _resnet_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class HyperIQABackbone(nn.Module):
    """ResNet-50 with the local-distortion-aware heads: crops ``(B, 3, 224, 224)`` -> layer-4 map
    ``(B, 2048, 7, 7)`` and the target network's input ``(B, target_in_size)``."""

    def __init__(self, config: HyperIQAConfig) -> None:
        super().__init__()
        lda = config.lda_out_channels
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _resnet_layer(64, 64, 3, 1)
        self.layer2 = _resnet_layer(256, 128, 4, 2)
        self.layer3 = _resnet_layer(512, 256, 6, 2)
        self.layer4 = _resnet_layer(1024, 512, 3, 2)
        # (in channels, reduced channels, cells of the 7x7-pooled map at 224 px)
        for k, (cin, cred, cells) in enumerate(((256, 16, 64), (512, 32, 16), (1024, 64, 4)), start=1):
            self.add_module(f"lda{k}_pool", nn.Sequential(nn.Conv2d(cin, cred, 1, bias=False), nn.AvgPool2d(7, 7)))
            self.add_module(f"lda{k}_fc", nn.Linear(cred * cells, lda))
        self.lda4_pool = nn.AvgPool2d(7, stride=7)
        self.lda4_fc = nn.Linear(2048, config.target_in_size - 3 * lda)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (B, 64, 56, 56)
        vec = []
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)  # (B, 256 / 512 / 1024 / 2048, 56 / 28 / 14 / 7, ...)
            vec.append(getattr(self, f"lda{k}_fc")(getattr(self, f"lda{k}_pool")(x).flatten(1)))
        return x, torch.cat(vec, dim=1)  # (B, 2048, 7, 7), (B, target_in_size)


@dataclass
class TargetWeights:
    """Per-image weights ``(B, out, in)`` and biases ``(B, out)`` of the five target layers."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]


def target_network(v: torch.Tensor, params: TargetWeights) -> torch.Tensor:
    """``q`` ``(B,)`` of inputs ``v`` ``(B, D)`` through layers with per-image weights (module docstring):
    a sigmoid after every layer but the last."""
    x = v
    last = len(params.weights) - 1
    for i, (w, b) in enumerate(zip(params.weights, params.biases)):
        x = torch.bmm(w, x[:, :, None])[:, :, 0] + b  # (B, out)
        if i < last:
            x = torch.sigmoid(x)
    return x[:, 0]


class HyperIQA(nn.Module):
    """Quality scores ``(B,)`` of normalised 224 x 224 crops (:meth:`forward`) or of images in [0, 1]
    (:meth:`score`); random weights until loaded with :meth:`from_file`."""

    def __init__(self, config: HyperIQAConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HyperIQAConfig()
        hyper, fs = config.hyper_in_channels, config.feature_size
        sizes = (config.target_in_size, *config.target_fc_sizes)
        for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            if (fin * fout) % (fs * fs):
                raise ValueError(f"target layer {i}: {fin} x {fout} weights do not fold into {fs} x {fs} maps")
        self.res = HyperIQABackbone(config)
        self.conv1 = nn.Sequential(nn.Conv2d(2048, 1024, 1), nn.ReLU(), nn.Conv2d(1024, 512, 1), nn.ReLU(),
                                   nn.Conv2d(512, hyper, 1), nn.ReLU())
        for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.add_module(f"fc{i}w_conv", nn.Conv2d(hyper, fin * fout // (fs * fs), 3, padding=1))
            self.add_module(f"fc{i}b_fc", nn.Linear(hyper, fout))
        self.fc5w_fc = nn.Linear(hyper, config.target_fc_sizes[-1])
        self.fc5b_fc = nn.Linear(hyper, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> HyperIQA:
        """The published model with the weights of ``path`` (the authors' state-dict keys, loaded strictly)."""
        model = cls()
        load_into(model, load_state_dict_file(path, WEIGHTS_NAME), path, WEIGHTS_NAME)
        return model

    def target_weights(self, crops: torch.Tensor) -> tuple[torch.Tensor, TargetWeights]:
        """The target network's input ``(B, 224)`` and its per-image weights for normalised crops."""
        feat, vec = self.res(crops)  # (B, 2048, 7, 7), (B, 224)
        h = self.conv1(feat)  # (B, 112, 7, 7)
        pooled = h.mean(dim=(2, 3))  # (B, 112)
        b = crops.shape[0]
        sizes = (self.config.target_in_size, *self.config.target_fc_sizes)
        weights, biases = [], []
        for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            weights.append(getattr(self, f"fc{i}w_conv")(h).reshape(b, fout, fin))  # (B, f_i, f_{i-1})
            biases.append(getattr(self, f"fc{i}b_fc")(pooled))  # (B, f_i)
        weights.append(self.fc5w_fc(pooled).reshape(b, 1, sizes[-1]))  # (B, 1, f_4)
        biases.append(self.fc5b_fc(pooled))  # (B, 1)
        return vec, TargetWeights(weights, biases)

    @torch.no_grad()
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of ImageNet-normalised crops ``(B, 3, 224, 224)``."""
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, CROP, CROP):
            raise ValueError(f"expected crops (B, 3, {CROP}, {CROP}), got shape {tuple(crops.shape)}")
        vec, params = self.target_weights(crops)
        return target_network(vec, params)

    @torch.no_grad()
    def score(self, images: torch.Tensor, num_crops: int = NUM_CROPS) -> torch.Tensor:
        """Quality ``(B,)`` of images ``(B, 3, H, W)`` in [0, 1]: resized to 512 x 384, mean score of the
        fixed crops of :func:`crop_offsets`."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(images.shape)}")
        x = F.interpolate(images.to(self.mean), size=RESIZE, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std  # (B, 3, 512, 384)
        crops = [x[:, :, y:y + CROP, c:c + CROP] for y, c in crop_offsets(num_crops)]
        scores = torch.stack([self(c) for c in crops], dim=1)  # (B, num_crops)
        return scores.mean(dim=1)


def crop_offsets(num_crops: int = NUM_CROPS, size: tuple[int, int] = RESIZE, crop: int = CROP) -> list[tuple[int, int]]:
    """``(y, x)`` of ``num_crops`` crops spread evenly over the positions a random ``crop`` x ``crop`` crop of
    an image of ``size`` can take: two columns (left and right edge) and ``num_crops / 2`` rows from top to
    bottom (one centred crop when ``num_crops`` is 1)."""
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    span_y, span_x = size[0] - crop, size[1] - crop
    if num_crops == 1:
        return [(span_y // 2, span_x // 2)]
    cols = 2
    rows = -(-num_crops // cols)
    ys = np.linspace(0, span_y, rows).round().astype(int)
    xs = np.linspace(0, span_x, cols).round().astype(int)
    return [(int(y), int(x)) for y in ys for x in xs][:num_crops]
