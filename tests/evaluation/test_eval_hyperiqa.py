"""HyperIQA (Table 3 image quality): the authors' key layout, strict loading, the target network, fixed crops.

No published weights can be had here, so a random model is saved in the key layout of the authors'
``koniq_pretrained.pkl`` (``torch.save`` of ``HyperNet(16, 112, 224, 112, 56, 28, 14, 7).state_dict()``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jointportrait.errors import InputError, MissingPathError
from jointportrait.evaluation.hyperiqa import HyperIQA, TargetWeights, crop_offsets, target_network


@pytest.fixture(scope="module")
def model() -> HyperIQA:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = HyperIQA()
        for m in net.modules():  # BatchNorm statistics away from (0, 1), as in a trained network
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hyperiqa") / "koniq_pretrained.pkl"
    torch.save(model.state_dict(), path)
    return path


# (key, shape) of the authors' checkpoint, worked out from their models.py with HyperNet(16, 112, 224, 112, 56, 28,
# 14, 7): fc1w_conv makes 224 * 112 / 7^2 = 512 maps, fc4w_conv 28 * 14 / 49 = 8; lda1_fc reads 16 channels of an
# 8 x 8 pooled map; lda4_fc gives 224 - 3 * 16 = 176 values.
PUBLISHED_SHAPES = {
    "res.conv1.weight": (64, 3, 7, 7),
    "res.layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "res.layer3.5.bn3.running_var": (1024,),
    "res.layer4.2.conv3.weight": (2048, 512, 1, 1),
    "res.lda1_pool.0.weight": (16, 256, 1, 1),
    "res.lda1_fc.weight": (16, 1024),
    "res.lda2_fc.weight": (16, 512),
    "res.lda3_pool.0.weight": (64, 1024, 1, 1),
    "res.lda3_fc.weight": (16, 256),
    "res.lda4_fc.weight": (176, 2048),
    "conv1.0.weight": (1024, 2048, 1, 1),
    "conv1.2.bias": (512,),
    "conv1.4.weight": (112, 512, 1, 1),
    "fc1w_conv.weight": (512, 112, 3, 3),
    "fc1b_fc.weight": (112, 112),
    "fc2w_conv.weight": (128, 112, 3, 3),
    "fc3w_conv.weight": (32, 112, 3, 3),
    "fc4w_conv.weight": (8, 112, 3, 3),
    "fc4b_fc.bias": (14,),
    "fc5w_fc.weight": (14, 112),
    "fc5b_fc.weight": (1, 112),
}


def test_state_dict_has_the_published_layout(model):
    state = model.state_dict()
    for key, shape in PUBLISHED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not [k for k in state if k.startswith(("res.fc", "fc.", "pool", "res.relu"))]
    # ResNet-50 without its classifier: 53 conv + 53 BatchNorm (5 tensors each); heads: 11; hyper network: 26
    assert len(state) == 53 + 53 * 5 + 11 + 26


def _group_conv_target(v: torch.Tensor, params: TargetWeights) -> torch.Tensor:
    """The authors' TargetFC: per-image weights applied as a grouped 1x1 convolution."""
    b = v.shape[0]
    x = v[:, :, None, None]  # (B, D, 1, 1)
    for i, (w, bias) in enumerate(zip(params.weights, params.biases)):
        out = F.conv2d(x.reshape(1, -1, 1, 1), w.reshape(-1, w.shape[2], 1, 1), bias.reshape(-1), groups=b)
        x = out.reshape(b, w.shape[1], 1, 1)
        if i < 4:
            x = torch.sigmoid(x)
    return x.reshape(b)


def test_target_network_matches_the_grouped_convolution_form():
    gen = torch.Generator().manual_seed(1)
    sizes = (224, 112, 56, 28, 14, 1)
    params = TargetWeights([torch.randn(3, o, i, generator=gen) * 0.1 for i, o in zip(sizes[:-1], sizes[1:])],
                           [torch.randn(3, o, generator=gen) for o in sizes[1:]])
    v = torch.randn(3, 224, generator=gen)
    torch.testing.assert_close(target_network(v, params), _group_conv_target(v, params))
    # one layer by hand: q = w . v + b with no sigmoid on the last layer
    single = TargetWeights([torch.tensor([[[2.0, -1.0]]])], [torch.tensor([[0.5]])])
    assert target_network(torch.tensor([[3.0, 4.0]]), single).item() == pytest.approx(2.5)


def test_scores_load_strictly_and_are_deterministic(model, checkpoint):
    loaded = HyperIQA.from_file(checkpoint)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 64, 48, generator=gen)
    s1, s2 = loaded.score(images, num_crops=1), loaded.score(images, num_crops=1)
    assert s1.shape == (2,) and torch.isfinite(s1).all()
    assert torch.equal(s1, s2)
    assert s1[0] != s1[1]  # two images, two scores
    with pytest.raises(ValueError, match="224"):
        loaded(torch.rand(1, 3, 128, 128))


def test_a_missing_or_foreign_key_is_a_one_line_error(model, tmp_path):
    state = model.state_dict()
    del state["fc3b_fc.bias"]
    torch.save(state, tmp_path / "partial.pkl")
    with pytest.raises(InputError, match=r"missing \['fc3b_fc.bias'\]"):
        HyperIQA.from_file(tmp_path / "partial.pkl")
    state = dict(model.state_dict(), **{"res.fc.weight": torch.zeros(1000, 2048)})
    torch.save(state, tmp_path / "extra.pkl")
    with pytest.raises(InputError, match="unexpected"):
        HyperIQA.from_file(tmp_path / "extra.pkl")
    with pytest.raises(MissingPathError, match="koniq"):
        HyperIQA.from_file(tmp_path / "koniq_pretrained.pkl")


def test_crop_offsets_cover_the_random_crop_range():
    offsets = crop_offsets()
    assert len(offsets) == 10 and len(set(offsets)) == 10
    ys, xs = zip(*offsets)
    assert (min(ys), max(ys), min(xs), max(xs)) == (0, 512 - 224, 0, 384 - 224)
    assert crop_offsets(1) == [((512 - 224) // 2, (384 - 224) // 2)]
