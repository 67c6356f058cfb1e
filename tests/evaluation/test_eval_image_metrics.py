"""Image metrics (Table 2): L1, SSIM, LPIPS, FID against hand computations and independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.ndimage import gaussian_filter

from jointportrait.errors import InputError, MissingPathError
from jointportrait.evaluation.fid import feature_statistics, frechet_distance, frechet_distance_from_features
from jointportrait.evaluation.image_metrics import image_metrics, l1_error, to_image_tensor
from jointportrait.evaluation.inception import RANDOM_FEATURES_LABEL, FIDInceptionV3
from jointportrait.evaluation.lpips import LPIPS
from jointportrait.evaluation.ssim import ssim


def test_l1_by_hand():
    x = np.zeros((4, 4, 3), np.uint8)
    y = np.full((4, 4, 3), 51, np.uint8)  # 51 / 255 = 0.2
    assert l1_error(x, y) == pytest.approx(0.2)
    assert to_image_tensor(y).shape == (1, 3, 4, 4)


def test_ssim_of_constant_images_by_hand():
    # sigma = 0 for constants: SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 1.0) ** 2
    x, y = torch.full((1, 3, 16, 16), 0.2), torch.full((1, 3, 16, 16), 0.6)
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert float(ssim(x, y)) == pytest.approx(expected, rel=1e-6)
    assert float(ssim(x, x)) == pytest.approx(1.0)


def _ssim_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """An independent SSIM: scipy Gaussian filters (sigma 1.5, 11 taps), borders cropped to the 'valid' part."""
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for c in range(x.shape[0]):
        a, b = x[c], y[c]
        f = lambda z: gaussian_filter(z, sigma=1.5, truncate=3.5, mode="constant")[5:-5, 5:-5]  # noqa: E731
        mx, my = f(a), f(b)
        sxx, syy, sxy = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
        vals.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_scipy_implementation():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 24, 20))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    ours = float(ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None]))
    assert ours == pytest.approx(_ssim_scipy(x, y), abs=1e-10)


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_frechet_distance_against_scipy_sqrtm():
    rng = np.random.default_rng(0)
    f1 = rng.normal(0, 1, (50, 6))
    f2 = rng.normal(0.5, 2, (40, 6)) @ rng.normal(0, 1, (6, 6))
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance_from_features(f1, f2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(3)
    f1, f2 = rng.normal(0, 1, (5, 12)), rng.normal(0.3, 1.5, (7, 12))
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real  # singular product: compare loosely
    expected = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    fast = frechet_distance_from_features(f1, f2)
    assert fast == pytest.approx(expected, rel=1e-4)
    assert fast == pytest.approx(frechet_distance(f1.mean(0), s1, f2.mean(0), s2), rel=1e-8)


def test_frechet_distance_one_dimension_by_hand():
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s_i
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    mu, cov = feature_statistics([[0.0], [2.0]])
    assert mu[0] == 1.0 and cov[0, 0] == pytest.approx(2.0)  # unbiased (ddof = 1)


def _lpips_by_hand(model: LPIPS, x: torch.Tensor, y: torch.Tensor) -> float:
    fx, fy = model.features(x), model.features(y)
    total = 0.0
    for k in range(5):
        a, b = fx[k][0].double().numpy(), fy[k][0].double().numpy()  # (C, H, W)
        a = a / (np.sqrt((a**2).sum(0, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b**2).sum(0, keepdims=True)) + 1e-10)
        w = getattr(model, f"lin{k}").model[1].weight.detach().double().numpy().reshape(-1, 1, 1)
        total += float(((a - b) ** 2 * w).sum(0).mean())
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_formula_on_tiny_random_backbone(net):
    torch.manual_seed(0)
    model = LPIPS(net=net, width=1 / 16)
    for k in range(5):
        getattr(model, f"lin{k}").model[1].weight.data.uniform_(0, 1)
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert float(model(x, y)) == pytest.approx(_lpips_by_hand(model, x, y), rel=1e-5)
    assert float(model(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_lpips_loads_lpips_package_layout_and_torchvision_keys(tmp_path):
    torch.manual_seed(1)
    source = LPIPS(net="alex")
    state = source.state_dict()
    assert "net.slice2.3.weight" in state and state["lin0.model.1.weight"].shape == (1, 64, 1, 1)
    torch.save(state, tmp_path / "lpips_alex.pt")
    loaded = LPIPS.from_file(tmp_path / "lpips_alex.pt")
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert float(loaded(x, y)) == pytest.approx(float(source(x, y)))
    renamed = {k.replace("net.slice2.", "features.") if k.startswith("net.slice2.") else k: v
               for k, v in state.items()}
    torch.save(renamed, tmp_path / "tv.pt")
    assert float(LPIPS.from_file(tmp_path / "tv.pt")(x, y)) == pytest.approx(float(source(x, y)))


def test_weights_errors_are_one_line(tmp_path):
    with pytest.raises(MissingPathError, match="LPIPS-alex weights"):
        LPIPS.from_file(tmp_path / "missing.pt")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="keys do not match"):
        LPIPS.from_file(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable weights file"):
        FIDInceptionV3.from_file(tmp_path / "junk.pt")


def test_image_metrics_with_and_without_lpips():
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    plain = image_metrics(x, y)
    assert set(plain) == {"l1", "ssim"}
    with_lpips = image_metrics(x, y, lpips_model=LPIPS(net="alex", width=1 / 16))
    assert set(with_lpips) == {"l1", "ssim", "lpips"}


def test_inception_features_and_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3(resize_input=False)
    assert model.label == RANDOM_FEATURES_LABEL
    x = torch.rand(2, 3, 75, 75)  # the smallest input the network takes (299 x 299 in real use)
    feats = model(x)
    assert feats.shape == (2, 2048)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.zeros(1008, 2048)  # pytorch-fid files carry a classifier: ignored
    torch.save(state, tmp_path / "pt_inception.pth")
    loaded = FIDInceptionV3.from_file(tmp_path / "pt_inception.pth")
    assert loaded.label == "FID"
    loaded.resize_input = False
    torch.testing.assert_close(loaded(x), feats)
