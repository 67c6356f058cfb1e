"""`jointportrait evaluate` over a handful of samples: folder matching, per-image means, JSON and table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from jointportrait.cli.main import main
from jointportrait.errors import InputError
from jointportrait.evaluation import inception
from jointportrait.evaluation.depth_metrics import depth_metrics
from jointportrait.evaluation.lpips import LPIPS
from jointportrait.evaluation.runner import (
    DepthItem,
    evaluate_depth_items,
    evaluate_image,
    evaluate_image_items,
)
from jointportrait.evaluation.tables import markdown_table


@pytest.fixture
def depth_folders(tmp_path):
    rng = np.random.default_rng(0)
    pred, gt, mask = tmp_path / "pred", tmp_path / "gt", tmp_path / "mask"
    for d in (pred, gt, mask):
        d.mkdir()
    for i in range(3):
        g = rng.uniform(0.5, 1.0, (16, 16)).astype(np.float32)
        g[0, :] = 0.0  # invalid ground truth
        m = np.zeros((16, 16), np.uint8)
        m[2:14, 2:14] = 255
        p = (0.2 * g + 0.1 + rng.normal(0, 0.01 * i, g.shape)).astype(np.float32)
        np.save(gt / f"im{i}.npy", g)
        np.save(pred / f"im{i}_depth.npy", p)  # what estimate-depth writes, with its PNG previews
        Image.fromarray((p * 1000).astype(np.uint16)).save(pred / f"im{i}_depth.png")
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(pred / f"im{i}_depth_color.png")
        Image.fromarray(m).save(mask / f"im{i}.png")
    return pred, gt, mask


def test_evaluate_depth_cli_writes_per_image_rows_and_their_mean(depth_folders, tmp_path, capsys):
    pred, gt, mask = depth_folders
    out = tmp_path / "res.json"
    assert main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--mask", str(mask),
                 "--out", str(out), "--method", "Ours"]) == 0
    report = json.loads(out.read_text())
    assert report["count"] == 3 and report["alignment"] == "depth"
    rows = {r["name"]: r for r in report["per_item"]}
    assert rows["im0"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)  # an exact affine map of the ground truth
    for i in range(3):
        m = np.asarray(Image.open(mask / f"im{i}.png")) > 127
        direct = depth_metrics(np.load(pred / f"im{i}_depth.npy"), np.load(gt / f"im{i}.npy"), m)
        assert rows[f"im{i}"]["rmse"] == pytest.approx(direct["rmse"])
    assert report["mean"]["abs_rel"] == pytest.approx(np.mean([r["abs_rel"] for r in rows.values()]))
    printed = capsys.readouterr().out
    assert "| Method | AbsRel↓ | δ1↑ | RMSE↓ |" in printed
    assert "| Ours | " in printed
    assert "depth space (as in Marigold's evaluation)" in printed


def test_evaluate_depth_cli_with_minmax_ground_truth(depth_folders, tmp_path, capsys):
    pred, gt, mask = depth_folders
    out = tmp_path / "minmax.json"
    assert main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--mask", str(mask), "--out", str(out),
                 "--gt-normalization", "minmax", "--no-normals"]) == 0
    report = json.loads(out.read_text())
    assert report["gt_normalization"] == "minmax"
    for row in report["per_item"]:
        i = row["name"]
        m = np.asarray(Image.open(mask / f"{i}.png")) > 127
        direct = depth_metrics(np.load(pred / f"{i}_depth.npy"), np.load(gt / f"{i}.npy"), m, gt_normalization="minmax")
        assert {k: row[k] for k in direct} == pytest.approx(direct)
    assert "min-max normalised to [0, 1] inside the mask" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # argparse: a one-line usage error
        main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "x.json"),
              "--gt-normalization", "zscore"])
    assert exit_info.value.code == 2 and "invalid choice: 'zscore'" in capsys.readouterr().err


def test_evaluate_refuses_to_overwrite_and_names_unmatched_files(depth_folders, tmp_path, capsys):
    pred, gt, _ = depth_folders
    out = tmp_path / "res.json"
    out.write_text("{}")
    assert main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    (gt / "im0.npy").unlink()
    assert main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without ground truth" in err and "im0" in err
    assert main(["evaluate", "depth", "--pred", str(tmp_path / "nope"), "--gt", str(gt),
                 "--out", str(tmp_path / "c.json")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["evaluate", "depth", "--pred", str(pred), "--gt", str(gt), "--pred-kind", "disparity",
                 "--out", str(tmp_path / "d.json")]) == 2
    assert "needs --alignment disparity" in capsys.readouterr().err


def _write_images(folder, arrays):
    folder.mkdir()
    for name, arr in arrays.items():
        Image.fromarray(arr).save(folder / f"{name}.png")


def test_evaluate_image_cli_by_hand(tmp_path, capsys):
    gt = {f"s{i}": np.full((16, 16, 3), 100, np.uint8) for i in range(2)}
    pred = {"s0": np.full((16, 16, 3), 100, np.uint8), "s1": np.full((16, 16, 3), 151, np.uint8)}
    _write_images(tmp_path / "gt", gt)
    _write_images(tmp_path / "pred", pred)
    out = tmp_path / "img.json"
    assert main(["evaluate", "image", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mean"]["l1"] == pytest.approx((0.0 + 51 / 255) / 2)
    c1 = 0.01**2
    a, b = 100 / 255, 151 / 255
    assert report["mean"]["ssim"] == pytest.approx((1.0 + (2 * a * b + c1) / (a * a + b * b + c1)) / 2, rel=1e-6)
    assert "lpips" not in report["mean"] and "fid" not in report["mean"]
    printed = capsys.readouterr().out
    assert "| Method | L1↓ | SSIM↑ |" in printed and "LPIPS omitted" in printed and "FID omitted" in printed


def test_evaluate_image_with_weights_and_random_feature_fid(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "FID_INPUT_SIZE", 75)  # the smallest input InceptionV3 takes: keeps the test fast
    rng = np.random.default_rng(0)
    _write_images(tmp_path / "gt", {f"s{i}": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(2)})
    _write_images(tmp_path / "pred", {f"s{i}": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(2)})
    torch.manual_seed(0)
    torch.save(LPIPS(net="alex").state_dict(), tmp_path / "lpips.pt")
    result = evaluate_image(tmp_path / "pred", tmp_path / "gt", lpips_weights=tmp_path / "lpips.pt",
                            random_inception_seed=0)
    assert {"l1", "ssim", "lpips", "fid"} <= set(result.mean)
    assert "not comparable" in result.labels["fid"]
    assert "not comparable" in markdown_table("image", [("x", result.mean)], result.labels)


def test_markdown_table_layout():
    table = markdown_table("depth", [("w/o Joint Learning", {"abs_rel": 0.26, "delta1": 0.738, "rmse": 0.05})])
    assert table.splitlines() == ["| Method | AbsRel↓ | δ1↑ | RMSE↓ |", "|---|---:|---:|---:|",
                                  "| w/o Joint Learning | 0.260 | 0.738 | 0.050 |"]


def test_in_memory_items_for_datasets_and_demos():
    rng = np.random.default_rng(5)
    gts = [rng.uniform(1.0, 2.0, (12, 12)) for _ in range(2)]
    items = [DepthItem(f"f{i}", 3.0 * g + rng.normal(0, 0.01 * (i + 1), g.shape), g, None, np.array([[20.0, 0, 5.5], [0, 20.0, 5.5], [0, 0, 1]]))
             for i, g in enumerate(gts)]
    result = evaluate_depth_items(items)
    expected = np.mean([depth_metrics(it.pred, it.gt)["abs_rel"] for it in items])
    assert result.mean["abs_rel"] == pytest.approx(expected)
    assert [r["name"] for r in result.rows] == ["f0", "f1"]
    bad = [DepthItem("empty", np.ones((4, 4)), np.zeros((4, 4)))]
    with pytest.raises(InputError, match="empty: the evaluation mask is empty"):
        evaluate_depth_items(bad)
    images = [(f"i{i}", torch.full((1, 3, 16, 16), 0.5), torch.full((1, 3, 16, 16), 0.5 + 0.1 * i)) for i in range(2)]
    res = evaluate_image_items(images)
    assert res.mean["l1"] == pytest.approx(0.05)
