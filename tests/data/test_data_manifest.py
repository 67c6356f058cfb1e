"""Manifest validation: every error names the file and the line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jointportrait.data.manifest import read_manifest, write_manifest
from jointportrait.errors import InputError, MissingPathError


def _frame(root, name, subject="s0", clip=None, frame=0):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / f"{name}.png")
    np.save(root / f"{name}.npy", np.ones((8, 8), np.float32))
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / f"{name}_m.png")
    return {"image": f"{name}.png", "depth": f"{name}.npy", "mask": f"{name}_m.png", "subject": subject,
            "clip": clip, "frame": frame, "split": "train", "source": "wild"}


def _write_lines(root, lines):
    (root / "manifest.jsonl").write_text("".join(lines))


def test_roundtrip_keeps_extra_keys(tmp_path):
    rec = _frame(tmp_path, "a") | {"normals": "n.png", "intrinsics": [[1, 0, 2], [0, 1, 2], [0, 0, 1]]}
    write_manifest(tmp_path / "manifest.jsonl", [rec, _frame(tmp_path, "b", frame=1)])
    records = read_manifest(tmp_path)
    assert [r.line for r in records] == [1, 2]
    assert records[0].extra == {"normals": "n.png"} and records[0].intrinsics[0] == (1.0, 0.0, 2.0)
    assert records[0].image == tmp_path / "a.png" and records[0].skin_mask is None


@pytest.mark.parametrize(
    ("line2", "message"),
    [
        ("{not json\n", "line 2: not valid JSON"),
        (json.dumps({"image": "a.png"}) + "\n", "line 2: missing key"),
        ("[1, 2]\n", "line 2: expected a JSON object"),
    ],
)
def test_malformed_line_is_named(tmp_path, line2, message):
    _write_lines(tmp_path, [json.dumps(_frame(tmp_path, "a")) + "\n", line2])
    with pytest.raises(InputError, match=message):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "training"}, "'split' must be one of"),
        ({"source": "lab"}, "'source' must be one of"),
        ({"frame": -1}, "'frame' must be a non-negative integer"),
        ({"depth_scale": 0}, "'depth_scale' must be a positive number"),
        ({"intrinsics": [[1, 0], [0, 1]]}, "'intrinsics' must be a 3x3"),
        ({"image": "/abs/a.png"}, "must be relative"),
    ],
)
def test_bad_values_are_named(tmp_path, change, message):
    _write_lines(tmp_path, [json.dumps(_frame(tmp_path, "a") | change) + "\n"])
    with pytest.raises(InputError, match=f"line 1: .*{message}"):
        read_manifest(tmp_path)


def test_missing_file_names_file_and_line(tmp_path):
    good, bad = _frame(tmp_path, "a"), _frame(tmp_path, "b", frame=1)
    (tmp_path / "b.npy").unlink()
    _write_lines(tmp_path, [json.dumps(good) + "\n", "\n", json.dumps(bad) + "\n"])
    with pytest.raises(MissingPathError, match=r"line 3: depth file .*b\.npy does not exist"):
        read_manifest(tmp_path)


def test_duplicate_clip_frame_and_empty_manifest(tmp_path):
    rec = _frame(tmp_path, "a", clip="c0", frame=3)
    _write_lines(tmp_path, [json.dumps(rec) + "\n", json.dumps(rec) + "\n"])
    with pytest.raises(InputError, match="line 2: duplicate frame 3 of clip c0"):
        read_manifest(tmp_path)
    _write_lines(tmp_path, ["\n"])
    with pytest.raises(InputError, match="no records"):
        read_manifest(tmp_path)
    with pytest.raises(MissingPathError, match="manifest"):
        read_manifest(tmp_path / "nowhere")


def test_writer_validates(tmp_path):
    with pytest.raises(InputError, match="record 1: 'split'"):
        write_manifest(tmp_path / "manifest.jsonl", [_frame(tmp_path, "a") | {"split": "x"}])
    assert not (tmp_path / "manifest.jsonl").exists()
