"""The protocol's parts, checked against values worked out by hand."""

import numpy as np
import pytest
import torch

from jointportrait.reproduce.data import camera_model
from jointportrait.reproduce.evaluate import depth_row
from jointportrait.reproduce.identity import identity_scores, train_identity_net
from jointportrait.reproduce.protocol import METHODS, STAGE2_SHARE, ProtocolConfig
from jointportrait.reproduce.report import differences, markdown_differences, markdown_tables, summarize


def test_equal_steps_and_the_papers_stage_proportion():
    cfg = ProtocolConfig(steps=300)
    assert pytest.approx(15 / 87) == STAGE2_SHARE  # 3 days : 15 hours
    ours = METHODS["ours"]
    assert [cfg.stage_steps(r, ours) for r in ours] == [248, 52]  # round(300 * 15 / 87) = 52
    for method in ("separate", "no_reference"):
        assert all(cfg.stage_steps(r, METHODS[method]) == 300 for r in METHODS[method])
    assert [r.data for r in METHODS["studio_only"]] == [("studio",)] * 2
    assert [r.data for r in METHODS["wild_only"]] == [("wild",)] * 2


def test_summary_and_differences_by_hand():
    per_seed = {"ours": {0: {"depth_to_image": {"l1": 0.10}}, 1: {"depth_to_image": {"l1": 0.12}}},
                "separate": {0: {"depth_to_image": {"l1": 0.20}}, 1: {"depth_to_image": {"l1": 0.22}}},
                "studio_only": {0: {"depth_to_image": {"l1": 0.115}}, 1: {"depth_to_image": {"l1": 0.125}}}}
    summary = summarize(per_seed)
    ours = summary["ours"]["depth_to_image"]["l1"]
    assert ours["mean"] == pytest.approx(0.11) and ours["std"] == pytest.approx(np.sqrt(2 * 0.01 ** 2))  # ddof 1
    rows = {r["method"]: r for r in differences(summary)}
    # separate: |0.21 - 0.11| = 0.10 > 0.01414 + 0.01414; studio only: 0.01 < 0.01414 + 0.00707
    assert rows["separate"]["exceeds_spread"] and not rows["studio_only"]["exceeds_spread"]
    assert rows["separate"]["delta"] == pytest.approx(0.10)
    table = markdown_tables(summary, {"depth_to_image": {"l1": 0.3, "ssim": 0.1}}, 2)
    assert "| Ours (joint, studio + wild) | 0.1100 ± 0.0141 |" in table
    assert "Trivial: reference copied | 0.3000 | 0.1000" in table
    assert "w/o joint learning | depth_to_image | l1" in markdown_differences(list(rows.values()))


def test_depth_row_is_zero_for_an_affine_copy_of_the_truth():
    gt = np.full((16, 16), 0.0, np.float32)
    yy, xx = np.mgrid[:16, :16]
    gt[4:12, 4:12] = 50.0 + 0.3 * yy[4:12, 4:12] + 0.2 * xx[4:12, 4:12]
    mask = gt > 0
    item = {"depth_raw": torch.from_numpy(gt)[None], "valid": torch.from_numpy(mask).float()[None],
            "skin_mask": torch.ones(1, 16, 16)}
    pred = np.where(mask, (gt - 50.0) / 10.0, 1.0)  # relative depth: an affine map of the truth
    row = depth_row(pred, item)
    for norm in ("metric", "minmax"):
        assert row[f"{norm}_abs_rel"] == pytest.approx(0.0, abs=1e-5) and row[f"{norm}_delta1"] == 1.0
    flat = depth_row(np.full((16, 16), 0.5), item)
    assert flat["minmax_abs_rel"] > flat["metric_abs_rel"] > 0  # the [0, 1] scale magnifies relative errors


def test_identity_scores_by_hand():
    refs = np.array([[1.0, 0.0], [0.0, 1.0]])
    generated = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
    owners = [0, 1, 1]  # the last one looks like subject 0
    scores = identity_scores(generated, owners, refs)
    cos = [0.9 / np.hypot(0.9, 0.1), 0.8 / np.hypot(0.2, 0.8), 0.0]
    assert scores["similarity"] == pytest.approx(np.mean(cos))
    assert scores["rank1"] == pytest.approx(2 / 3)


def test_identity_net_tells_apart_subjects_it_learned():
    gen = torch.Generator().manual_seed(0)
    colours = torch.tensor([[0.8, -0.5, -0.5], [-0.5, -0.5, 0.8], [-0.5, 0.8, -0.5]])  # three "subjects"

    def images(n):
        return (colours.repeat_interleave(n, 0)[:, :, None, None] + 0.3 * torch.randn(3 * n, 3, 16, 16,
                                                                                      generator=gen)).clamp(-1, 1)

    net = train_identity_net(images(8), [s for s in "abc" for _ in range(8)], steps=40, batch_size=24)
    with torch.no_grad():
        emb = net.embedding(images(4)).numpy()
        refs = net.embedding(images(1)).numpy()
    assert identity_scores(emb, [i for i in range(3) for _ in range(4)], refs)["rank1"] == 1.0


def test_camera_model_is_deterministic_and_changes_the_frames():
    frames = (np.random.default_rng(0).uniform(0.2, 0.8, size=(2, 16, 16, 3)) * 255).astype(np.uint8)
    a = camera_model(frames, np.random.default_rng(1))
    b = camera_model(frames, np.random.default_rng(1))
    assert a.shape == frames.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert np.abs(a.astype(float) - frames).mean() > 2.0
