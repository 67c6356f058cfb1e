"""Fuzz of the image and depth readers (jointportrait.io): whatever bytes a file holds, the reader returns an
RGB image / a float32 depth map within the size limits, or raises an InputError naming the file; nothing else.
A short pass runs by default (seconds); ``-m slow`` runs a long one."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from jointportrait.errors import InputError
from jointportrait.io import MIN_IMAGE_SIDE, load_depth, load_image, max_image_pixels

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the damaged TIFF tags it skips


def _encoded(fmt: str, mode: str, size=(12, 10), **kwargs) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _png16() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(120, dtype=np.uint16).reshape(10, 12) * 500).save(buffer, "PNG")
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.linspace(0, 1, 120, dtype=np.float32).reshape(10, 12))
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


IMAGE_SEEDS = {  # suffix -> valid files of that kind, which the fuzzer mutates
    ".png": [_encoded("PNG", "RGB"), _encoded("PNG", "RGBA"), _encoded("PNG", "L"), _encoded("PNG", "P"), _png16(),
             _png_claiming(40000, 40000)],
    ".jpg": [_encoded("JPEG", "RGB"), _encoded("JPEG", "CMYK"), _encoded("JPEG", "L")],
    ".webp": [_encoded("WEBP", "RGB")],
    ".bmp": [_encoded("BMP", "RGB")],
    ".tif": [_encoded("TIFF", "RGB"), _encoded("TIFF", "CMYK")],
}
DEPTH_SEEDS = {".npy": [_npy()], ".png": [_png16()]}


def _mutated(seeds: dict[str, list[bytes]]):
    """(suffix, bytes): a seed with a few bytes replaced, cut short or extended, or random bytes."""
    edits = st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=4)), max_size=4)

    @st.composite
    def build(draw):
        suffix = draw(st.sampled_from(sorted(seeds)))
        if draw(st.integers(0, 9)) == 0:
            return suffix, draw(st.binary(max_size=200))
        data = bytearray(draw(st.sampled_from(seeds[suffix])))
        for where, new in draw(edits):
            at = int(where * (len(data) - 1))
            data[at:at + len(new)] = new
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return suffix, bytes(data)

    return build()


def _check_image(tmp_path_factory, suffix: str, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert image.mode == "RGB" and min(image.size) >= MIN_IMAGE_SIDE
    assert image.width * image.height <= max_image_pixels()


def _check_depth(tmp_path_factory, suffix: str, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"depth{suffix}"
    path.write_bytes(data)
    try:
        depth = load_depth(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert depth.dtype == np.float32 and depth.ndim == 2 and min(depth.shape) >= 2


FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LONG = settings(max_examples=4000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(_mutated(IMAGE_SEEDS))
def test_fuzz_image_reader(tmp_path_factory, case):
    _check_image(tmp_path_factory, *case)


@FUZZ
@given(_mutated(DEPTH_SEEDS))
def test_fuzz_depth_reader(tmp_path_factory, case):
    _check_depth(tmp_path_factory, *case)


@pytest.mark.slow
@LONG
@given(_mutated(IMAGE_SEEDS))
def test_fuzz_image_reader_long(tmp_path_factory, case):
    _check_image(tmp_path_factory, *case)


@pytest.mark.slow
@LONG
@given(_mutated(DEPTH_SEEDS))
def test_fuzz_depth_reader_long(tmp_path_factory, case):
    _check_depth(tmp_path_factory, *case)


@pytest.mark.parametrize("suffix", sorted(IMAGE_SEEDS))
def test_every_seed_is_read(tmp_path, suffix):
    """The fuzzer starts from files the reader accepts (apart from the deliberate bomb)."""
    for i, data in enumerate(IMAGE_SEEDS[suffix]):
        path = tmp_path / f"seed{i}{suffix}"
        path.write_bytes(data)
        if data.startswith(b"\x89PNG") and b"IHDR\x00\x00\x9c\x40" in data:
            with pytest.raises(InputError, match="more than the limit"):
                load_image(path)
        else:
            assert load_image(path).size == (12, 10)
