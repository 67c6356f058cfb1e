"""Upload checks of the web demo: type by content, size, pixel count before decoding, clean messages."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import PIL.Image
import PIL.ImageFile
import pytest

from jointportrait.errors import InputError
from jointportrait.serve.limits import (
    UploadLimits,
    check_image_upload,
    format_bytes,
    load_image_upload,
    sniff_image_format,
)


def png_claiming(path, width: int, height: int) -> None:
    """A tiny PNG file whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats_are_recognised_by_content(tmp_path, fmt):
    path = tmp_path / "image.bin"  # the name says nothing
    PIL.Image.fromarray(np.full((32, 40, 3), 120, np.uint8)).save(path, format=fmt)
    header = check_image_upload(path, UploadLimits())
    assert (header.format, header.width, header.height) == (fmt, 40, 32)
    assert load_image_upload(path, UploadLimits()).size == (40, 32)


def test_sniffing_refuses_other_content():
    assert sniff_image_format(b"hello world, not an image") is None
    assert sniff_image_format(b"GIF89a\x01\x00\x01\x00") is None  # a real image type, but not accepted
    assert sniff_image_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # RIFF, but audio


def test_text_renamed_png_is_refused_with_a_message_naming_the_upload(text_as_png):
    with pytest.raises(InputError) as err:
        load_image_upload(text_as_png, UploadLimits(), "photo")
    assert str(err.value) == "photo: not a PNG, JPEG or WebP image (the file's content was checked, not its name)"


def test_pixel_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    png_claiming(path, 40000, 40000)  # 1.6 G pixels in a ~100-byte file
    assert path.stat().st_size < 200

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InputError, match=r"more pixels than the limit of 25,000,000 \(refused before decoding\)"):
        check_image_upload(path, UploadLimits())
    png_claiming(path, 6000, 5000)  # under Pillow's own bomb limit, over ours
    with pytest.raises(InputError, match=r"6000 x 5000 pixels is more than the limit of 25,000,000"):
        check_image_upload(path, UploadLimits())


def test_size_limits_and_small_images(tmp_path):
    path = tmp_path / "photo.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    with pytest.raises(InputError, match=r"photo: the file is 1\d kB; the limit is 1000 bytes"):
        check_image_upload(path, UploadLimits(max_bytes=1000))
    with pytest.raises(InputError, match="64 x 64 pixels is too small; each side needs at least 100"):
        check_image_upload(path, UploadLimits(min_side=100))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="photo: the file is empty"):
        check_image_upload(empty, UploadLimits())
    assert (format_bytes(20 * 2**20), format_bytes(1536), format_bytes(12)) == ("20.0 MB", "2 kB", "12 bytes")
    with pytest.raises(InputError, match="--max-pixels: at most"):
        UploadLimits(max_pixels=10**12)


def test_truncated_image_message_hides_the_server_path(tmp_path):
    path = tmp_path / "cut.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(InputError) as err:
        load_image_upload(path, UploadLimits(), "reference")
    assert str(err.value).startswith("reference: not a readable image")
    assert str(tmp_path) not in str(err.value)
