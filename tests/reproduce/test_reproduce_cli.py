"""``jointportrait reproduce --quick``: the whole protocol at toy size, then resumed.

The default suite runs one seed (nine toy training runs); the two-seed run with the spread in
``results.json`` is marked slow (the aggregation itself is checked by hand in test_reproduce_parts.py).
"""

import json

import pytest

from jointportrait.cli.main import main
from jointportrait.reproduce.protocol import METHODS


def _run_and_check(out, seeds, capsys):
    args = ["reproduce", "--quick", "--seeds", str(seeds), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == set(METHODS)
    for method, per_seed in results["methods"].items():
        assert set(per_seed) == {str(s) for s in range(seeds)}, method
    ours = results["methods"]["ours"]["0"]
    for section in ("depth_studio", "depth_wild", "depth_to_image", "identity_studio", "identity_wild"):
        assert section in ours
    assert set(results["methods"]["no_reference"]["0"]) == {"identity_studio", "identity_wild", "eval_seconds"}
    assert "depth_studio" in results["methods"]["separate"]["0"]
    assert "identity_studio" not in results["methods"]["separate"]["0"]
    assert results["summary"]["ours"]["depth_studio"]["metric_abs_rel"]["n"] == seeds
    assert results["tracking"]["clips_tracked"] >= 1
    for key in ("depth_studio", "depth_to_image", "identity_studio"):
        assert key in results["trivial"]
    tables = (out / "tables.md").read_text()
    assert "Table 1: depth estimation" in tables and "Fig. 9" in tables and "Table 2" in printed
    for name in ["fig9_studio.png", "fig9_wild.png"] + [f"{m}.png" for m in METHODS]:
        assert (out / "figures" / name).stat().st_size > 0, name
    return args, results


def test_quick_protocol_writes_every_method_and_resumes(tmp_path, capsys):
    out = tmp_path / "repro"
    args, results = _run_and_check(out, 1, capsys)
    # interrupted during the joint model's stage 2: the next call trains only what is missing
    stage2 = out / "runs" / "ours" / "seed0" / "stage2"
    final = stage2 / "final" / "model_index.json"
    stage1_final = out / "runs" / "ours" / "seed0" / "stage1" / "final" / "model_index.json"
    mtime = stage1_final.stat().st_mtime
    for p in sorted(stage2.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (out / "eval" / "ours_seed0.json").unlink()
    assert main(args) == 0
    assert final.exists() and stage1_final.stat().st_mtime == mtime
    again = json.loads((out / "results.json").read_text())
    assert again["methods"]["separate"] == results["methods"]["separate"]


@pytest.mark.slow
def test_quick_protocol_with_two_seeds_reports_the_spread(tmp_path, capsys):
    _, results = _run_and_check(tmp_path / "repro", 2, capsys)
    stat = results["summary"]["ours"]["depth_studio"]["metric_abs_rel"]
    values = [results["methods"]["ours"][s]["depth_studio"]["metric_abs_rel"] for s in ("0", "1")]
    assert stat["mean"] == pytest.approx(sum(values) / 2)
    assert stat["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)


def test_reproduce_refuses_bad_arguments_and_another_protocol(tmp_path, capsys):
    assert main(["reproduce", "--seeds", "0", "--out", str(tmp_path / "a")]) == 2
    out = tmp_path / "b"
    out.mkdir()
    (out / "protocol.json").write_text(json.dumps({"steps": 1}))
    assert main(["reproduce", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "--seeds" in err[0] and "another protocol" in err[1]
