"""``jointportrait reproduce --quick``: the whole protocol at toy size, then resumed."""

import json

from jointportrait.cli.main import main
from jointportrait.reproduce.protocol import METHODS


def test_quick_protocol_writes_every_method_and_seed_and_resumes(tmp_path, capsys):
    out = tmp_path / "repro"
    args = ["reproduce", "--quick", "--seeds", "2", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == set(METHODS)
    for method, seeds in results["methods"].items():
        assert set(seeds) == {"0", "1"}, method
    ours = results["methods"]["ours"]["0"]
    for section in ("depth_studio", "depth_wild", "depth_to_image", "identity_studio", "identity_wild"):
        assert section in ours
    assert set(results["methods"]["no_reference"]["0"]) == {"identity_studio", "identity_wild", "eval_seconds"}
    assert "depth_studio" in results["methods"]["separate"]["0"]
    assert "identity_studio" not in results["methods"]["separate"]["0"]
    assert results["summary"]["ours"]["depth_studio"]["metric_abs_rel"]["n"] == 2
    assert results["tracking"]["clips_tracked"] >= 1
    for key in ("depth_studio", "depth_to_image", "identity_studio"):
        assert key in results["trivial"]
    tables = (out / "tables.md").read_text()
    assert "Table 1: depth estimation" in tables and "Fig. 9" in tables and "Table 2" in printed
    for name in ["fig9_studio.png", "fig9_wild.png"] + [f"{m}.png" for m in METHODS]:
        assert (out / "figures" / name).stat().st_size > 0, name

    # interrupted after training one run of seed 1: the next call trains only what is missing
    stage2 = out / "runs" / "ours" / "seed1" / "stage2"
    final = stage2 / "final" / "model_index.json"
    mtime = (out / "runs" / "ours" / "seed1" / "stage1" / "final" / "model_index.json").stat().st_mtime
    for p in sorted(stage2.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (out / "eval" / "ours_seed1.json").unlink()
    assert main(args) == 0
    assert final.exists()
    assert (out / "runs" / "ours" / "seed1" / "stage1" / "final" / "model_index.json").stat().st_mtime == mtime
    again = json.loads((out / "results.json").read_text())
    assert again["methods"]["separate"] == results["methods"]["separate"]


def test_reproduce_refuses_bad_arguments_and_another_protocol(tmp_path, capsys):
    assert main(["reproduce", "--seeds", "0", "--out", str(tmp_path / "a")]) == 2
    out = tmp_path / "b"
    out.mkdir()
    (out / "protocol.json").write_text(json.dumps({"steps": 1}))
    assert main(["reproduce", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "--seeds" in err[0] and "another protocol" in err[1]
