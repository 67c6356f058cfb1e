"""LPIPS perceptual distance (Zhang et al. 2018) for Tables 2 and 3 (paper Sec. 5.2, 5.5).

No torchvision and no ``lpips`` package here (ENVIRONMENT.md): the AlexNet and
VGG16 feature stacks and the linear heads are defined in this module, with
parameter names laid out as in ``lpips.LPIPS(net=...).state_dict()``::

    net.slice{1..5}.{i}.weight / .bias    (i = index in torchvision's ``features``)
    lin{0..4}.model.1.weight              (1x1 conv, no bias, shape (1, C_k, 1, 1))

so the official weights convert with one ``torch.save(lpips.LPIPS(net="alex").state_dict(), "lpips_alex.pt")``
(on any machine that has the package; its duplicate ``lins.*`` keys are ignored). A file holding torchvision's
``features.{i}.*`` keys plus the ``lin*`` keys also loads. The published files can also be used as they
ship, without the ``lpips`` package (which needs torchvision): the linear layers are
``lpips/weights/v0.1/{alex,vgg}.pth`` inside the ``lpips`` 0.1.4 wheel (``lin{k}.model.1.weight`` only), and
the backbone is torchvision's ImageNet file (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``:
``features.{i}.*``, its ``classifier.*`` ignored): ``LPIPS.from_file(linear, net, backbone=...)``.

Distance between images ``x``, ``y`` in [0, 1] (mapped to [-1, 1], then
``(v - shift) / scale``), per layer ``k`` with features ``f^k`` (C_k, H_k, W_k)::

    f_hat = f / (sqrt(sum_c f_c^2) + 1e-10)          (unit length over channels)
    d_k   = mean_{h,w} sum_c w_{k,c} (f_hat_x - f_hat_y)_c^2
    LPIPS = sum_k d_k
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from jointportrait.errors import InputError
from jointportrait.evaluation._weights import load_into, load_state_dict_file

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


@dataclass(frozen=True)
class BackboneSpec:
    """A torchvision-style ``features`` stack: ops in order and where each of the 5 LPIPS slices ends."""

    ops: tuple[tuple, ...]  # ("conv", in, out, kernel, stride, padding) | ("relu",) | ("maxpool", kernel, stride)
    slice_ends: tuple[int, int, int, int, int]

    def channels(self) -> list[int]:
        """Output channels of each slice."""
        out, chans = 3, []
        for i, op in enumerate(self.ops):
            if op[0] == "conv":
                out = op[2]
            if i + 1 in self.slice_ends:
                chans.append(out)
        return chans


def _alexnet(width: float = 1.0) -> BackboneSpec:
    c = [max(1, int(round(n * width))) for n in (64, 192, 384, 256, 256)]
    return BackboneSpec(
        ops=(("conv", 3, c[0], 11, 4, 2), ("relu",), ("maxpool", 3, 2), ("conv", c[0], c[1], 5, 1, 2), ("relu",),
             ("maxpool", 3, 2), ("conv", c[1], c[2], 3, 1, 1), ("relu",), ("conv", c[2], c[3], 3, 1, 1), ("relu",),
             ("conv", c[3], c[4], 3, 1, 1), ("relu",)),
        slice_ends=(2, 5, 8, 10, 12),
    )


def _vgg16(width: float = 1.0) -> BackboneSpec:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    ops, cin = [], 3
    for v in cfg:
        if v == "M":
            ops.append(("maxpool", 2, 2))
        else:
            cout = max(1, int(round(v * width)))
            ops += [("conv", cin, cout, 3, 1, 1), ("relu",)]
            cin = cout
    return BackboneSpec(ops=tuple(ops), slice_ends=(4, 9, 16, 23, 30))


# name -> spec builder (width 1.0 = the published network).
BACKBONES = {"alex": _alexnet, "vgg": _vgg16}


def _make_op(op: tuple) -> nn.Module:
    if op[0] == "conv":
        return nn.Conv2d(op[1], op[2], kernel_size=op[3], stride=op[4], padding=op[5])
    if op[0] == "relu":
        return nn.ReLU(inplace=False)
    return nn.MaxPool2d(kernel_size=op[1], stride=op[2])


class LPIPSBackbone(nn.Module):
    """The feature stack cut into ``slice1..slice5``; child names keep torchvision's ``features`` indices."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        start = 0
        for k, end in enumerate(spec.slice_ends, start=1):
            block = nn.Sequential()
            for i in range(start, end):
                block.add_module(str(i), _make_op(spec.ops[i]))
            self.add_module(f"slice{k}", block)
            start = end

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            feats.append(x)  # (B, C_k, H_k, W_k)
        return feats


class _Linear(nn.Module):
    """``model.1`` is the 1x1 conv, as in lpips' ``NetLinLayer`` (``model.0`` is a parameter-free dropout)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


class LPIPS(nn.Module):
    """LPIPS distance ``(B,)`` between images ``(B, 3, H, W)`` in [0, 1]; random weights until loaded."""

    def __init__(self, net: str = "alex", width: float = 1.0) -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"net must be one of {tuple(BACKBONES)}, got {net!r}")
        spec = BACKBONES[net](width)
        self.net_name = net
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.net = LPIPSBackbone(spec)
        for k, c in enumerate(spec.channels()):
            self.add_module(f"lin{k}", _Linear(c))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path, net: str = "alex", backbone: str | Path | None = None) -> LPIPS:
        """Load the published LPIPS weights from local files (layouts in the module docstring).

        ``path``: the whole model (``lpips.LPIPS(net).state_dict()``), or the linear layers only (the
        package's ``weights/v0.1/<net>.pth``), in which case ``backbone`` is the network's torchvision
        ImageNet state dict.
        """
        model = cls(net=net)
        what = f"LPIPS-{net} weights (lpips.LPIPS(net={net!r}).state_dict(), or its weights/v0.1/{net}.pth)"
        state = load_state_dict_file(path, what)
        if backbone is not None:
            features = load_state_dict_file(backbone, f"torchvision {net} ImageNet weights (features.* keys)")
            if not any(k.startswith("features.") for k in features):
                raise InputError(f"{backbone}: no features.* tensors; expected torchvision {net} ImageNet weights")
            state = {**{k: v for k, v in features.items() if k.startswith("features.")}, **state}
        elif all(k.startswith("lin") for k in state):
            raise InputError(f"{path}: holds the LPIPS linear layers only; give the {net} backbone weights too "
                             f"(torchvision's ImageNet file)")
        state = {_torchvision_key(k, model): v for k, v in state.items()}
        load_into(model, state, path, f"LPIPS-{net}", ignore_prefixes=("scaling_layer.", "lins."))
        return model

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone features of images ``(B, 3, H, W)`` in [0, 1]."""
        v = (x.to(self.shift.dtype) * 2.0 - 1.0 - self.shift) / self.scale
        return self.net(v)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x.shape[0], device=x.device)  # (B,)
        for k, (fx, fy) in enumerate(zip(self.features(x), self.features(y))):
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)  # (B, C_k, H_k, W_k)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            d = getattr(self, f"lin{k}").model(nx.sub(ny).pow(2))  # (B, 1, H_k, W_k)
            total = total + d.mean(dim=(1, 2, 3))
        return total


def _torchvision_key(key: str, model: LPIPS) -> str:
    """``features.{i}.w`` (torchvision) -> ``net.slice{k}.{i}.w``; other keys unchanged."""
    if not key.startswith("features."):
        return key
    index = int(key.split(".")[1])
    for name, block in model.net.named_children():
        if str(index) in block._modules:
            return f"net.{name}.{key[len('features.'):]}"
    return key
