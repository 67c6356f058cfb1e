"""Properties and a fuzz pass of the manifest reader (DESIGN.md "Data on disk"): valid records survive a round
trip; anything else is an InputError naming the manifest and the line, never another exception."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointportrait.data.manifest import SOURCES, SPLITS, read_manifest, write_manifest
from jointportrait.errors import InputError

NAMES = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
PATHS = st.builds(lambda d, f: f"{d}/{f}.png", NAMES, NAMES)
NUMBERS = st.floats(-1e3, 1e3, allow_nan=False)


@st.composite
def records(draw):
    record = {"image": draw(PATHS), "depth": draw(PATHS), "mask": draw(PATHS), "subject": draw(NAMES),
              "frame": draw(st.integers(0, 10_000)), "split": draw(st.sampled_from(SPLITS)),
              "source": draw(st.sampled_from(SOURCES))}
    if draw(st.booleans()):
        record["clip"] = draw(NAMES)
    if draw(st.booleans()):
        record["intrinsics"] = [[draw(NUMBERS) for _ in range(3)] for _ in range(3)]
    if draw(st.booleans()):
        record["depth_scale"] = draw(st.floats(1e-6, 1e6))
    if draw(st.booleans()):
        record["note"] = draw(st.text(max_size=20))
    return record


def _unique(items: list[dict]) -> list[dict]:
    """Give each record its own frame number so that no two collide (duplicates are an error by design)."""
    return [{**r, "frame": i} for i, r in enumerate(items)]


@given(st.lists(records(), min_size=1, max_size=8).map(_unique))
def test_round_trip(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("manifest") / "manifest.jsonl"
    write_manifest(path, items, check_files=False)
    back = read_manifest(path, check_files=False)
    assert len(back) == len(items)
    for record, item in zip(back, items):
        assert record.image == path.parent / item["image"] and record.subject == item["subject"]
        assert (record.frame, record.split, record.source) == (item["frame"], item["split"], item["source"])
        assert record.clip == item.get("clip") and record.depth_scale == float(item.get("depth_scale", 1.0))
        if "intrinsics" in item:
            assert [list(r) for r in record.intrinsics] == item["intrinsics"]
        assert record.extra == ({"note": item["note"]} if "note" in item else {})


def _read_or_input_error(path):
    try:
        return read_manifest(path, check_files=False)
    except InputError as exc:
        assert str(path) in str(exc)
        return exc


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | NUMBERS | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=4), max_leaves=10)


@given(st.lists(records(), min_size=1, max_size=4).map(_unique), st.data())
def test_a_bad_line_is_named(tmp_path_factory, items, data):
    """One line replaced by any JSON value or any text: read, or refused naming that line."""
    path = tmp_path_factory.mktemp("manifest") / "manifest.jsonl"
    lines = [json.dumps(r) for r in items]
    index = data.draw(st.integers(0, len(lines) - 1))
    bad = data.draw(JSON_VALUES.map(json.dumps) | st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t))
    lines[index] = bad
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _read_or_input_error(path)
    if isinstance(result, InputError) and bad.strip():
        assert f"line {index + 1}" in str(result) or "no records" in str(result)


def _fuzz_manifest(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "manifest.jsonl"
    path.write_bytes(content)
    _read_or_input_error(path)


VALID = (json.dumps({"image": "a.png", "depth": "a.npy", "mask": "m.png", "subject": "s", "frame": 0,
                     "split": "train", "source": "studio"}) + "\n").encode()


def _mutations():
    """Bytes near a valid manifest: random bytes, or the valid text with bytes replaced, cut or inserted."""
    edits = st.lists(st.tuples(st.integers(0, len(VALID)), st.binary(min_size=0, max_size=3)), min_size=1, max_size=4)

    def apply(changes):
        data = bytearray(VALID * 2)
        for offset, new in changes:
            data[offset:offset + len(new) or offset + 1] = new
        return bytes(data)

    return st.binary(max_size=300) | edits.map(apply)


@given(_mutations())
def test_fuzz_manifest_reader(tmp_path_factory, content):
    _fuzz_manifest(tmp_path_factory, content)


@pytest.mark.slow
@settings(max_examples=5000)
@given(_mutations())
def test_fuzz_manifest_reader_long(tmp_path_factory, content):
    _fuzz_manifest(tmp_path_factory, content)
