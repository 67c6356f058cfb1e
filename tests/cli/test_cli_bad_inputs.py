"""Bad inputs across every command, as one table: each ends in ONE line naming the file and the problem, a
non-zero exit and nothing written; the image kinds users have (RGBA, CMYK, 16-bit, EXIF-rotated, grey) work;
a folder mixing good and bad files processes the good ones and names the bad ones. Also: a full disk (a
tmpfs) and a real out-of-memory failure, each one line."""

from __future__ import annotations

import json
import resource
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from jointportrait.cli.main import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"
H, W = 48, 64  # displayed size of every good photo
GOOD_PHOTOS = ("rgba.png", "cmyk.jpg", "grey16.png", "grey.png", "exif.jpg")
BAD_PHOTOS = {"empty.png": "file is empty", "truncated.png": "not a readable image",
              "text.png": "not a readable image", "one.png": "too small to process",
              "bomb.png": "more than the limit of"}


def _png_claiming(width: int, height: int) -> bytes:
    """A 200-byte PNG whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + \
        chunk(b"IEND", b"")


def _write_photos(folder: Path, rgb: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.dstack([rgb, np.full((H, W), 200, np.uint8)])).save(folder / "rgba.png")
    PIL.Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    PIL.Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "grey16.png")
    PIL.Image.fromarray(rgb[..., 1]).save(folder / "grey.png")
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored W x H = 48 x 64, shown rotated by 90 degrees: 64 x 48
    PIL.Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(folder / "exif.jpg", exif=exif)


def _write_bad_photos(folder: Path, rgb: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    PIL.Image.fromarray(rgb).save(folder / "whole.png")
    whole = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "text.png").write_text("not an image")
    PIL.Image.fromarray(rgb[:1, :1]).save(folder / "one.png")
    (folder / "bomb.png").write_bytes(_png_claiming(40000, 40000))


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    _write_photos(root, rgb)
    _write_bad_photos(root, rgb)
    _write_photos(root / "mixed", rgb)
    _write_bad_photos(root / "mixed", rgb)
    (root / "mixed" / "notes.txt").write_text("not a photo; skipped by suffix")
    PIL.Image.fromarray(rgb).save(root / "good.png")
    (root / "notes.txt").write_text("a text file")
    (root / "png_named.txt").write_bytes((root / "good.png").read_bytes())  # an image under a wrong name
    depth = np.tile(np.linspace(0.2, 0.8, W, dtype=np.float32), (H, 1))
    np.save(root / "depth.npy", depth)
    np.save(root / "depth1.npy", depth[:1, :1])
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "truncated.npy").write_bytes((root / "depth.npy").read_bytes()[:300])
    (root / "png_named.npy").write_bytes((root / "good.png").read_bytes())
    (root / "png_named.exr").write_bytes((root / "good.png").read_bytes())
    # model folders: a truncated weights file, a broken model_index.json, pickle-only weights
    for name in ("m_truncated", "m_json", "m_pickle"):
        shutil.copytree(tiny_model_dir, root / name)
    unet = root / "m_truncated" / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[: unet.stat().st_size // 2])
    (root / "m_json" / "model_index.json").write_text('{"_class_name": "JointPortraitPipeline",')
    vae = root / "m_pickle" / "vae" / "diffusion_pytorch_model.safetensors"
    vae.rename(vae.with_suffix(".bin"))
    (root / "single.safetensors").write_bytes(unet.read_bytes()[:1000])
    # other formats the commands read
    (root / "camera.json").write_text('{"intrinsics": [[50, 0, 32], [0, 50, 24]')
    (root / "garbage.obj").write_text("v 1 2\nf 1 2 x\n")
    (root / "landmarks.json").write_text("[[[1, 2], [3, 4]")
    (root / "frames").mkdir()
    PIL.Image.fromarray(rgb).save(root / "frames" / "f000.png")
    (root / "frames" / "f001.png").write_bytes((root / "truncated.png").read_bytes())
    (root / "broken.yaml").write_text("model: [unclosed\n")
    data = root / "data"
    data.mkdir()
    (data / "manifest.jsonl").write_text('{"image": "a.png", "depth": "a.npy"\n')
    (root / "pred").mkdir()
    (root / "gt").mkdir()
    np.save(root / "gt" / "a.npy", depth)
    (root / "pred" / "a.npy").write_bytes((root / "good.png").read_bytes())
    return root


MODEL = ["--model", "{model}", "--steps", "1", "--processing-resolution", "32"]
D = "{f}/depth.npy"

# (id, argv, exit status, what the one error line must contain)
CASES = [
    # the rows of issue 18
    ("bomb", ["estimate-depth", "--image", "{f}/bomb.png", *MODEL], 2,
     "bomb.png: image has 1,600,000,000 pixels, more than the limit of 67,108,864 (refused before decoding"),
    ("1x1", ["estimate-depth", "--image", "{f}/one.png", *MODEL], 2,
     "one.png: image is 1x1 pixels, too small to process (at least 8x8 needed)"),
    ("truncated weights", ["estimate-depth", "--image", "{f}/good.png", "--model", "{f}/m_truncated"], 2,
     "m_truncated/unet/diffusion_pytorch_model.safetensors: truncated safetensors file"),
    ("model_index not JSON", ["generate", "--reference", "{f}/good.png", "--model", "{f}/m_json"], 2,
     "m_json/model_index.json: not valid JSON (Expecting property name enclosed in double quotes at line 1"),
    ("pickle-only weights", ["edit", "--image", "{f}/good.png", "--edited-depth", D, "--model", "{f}/m_pickle"], 2,
     "m_pickle/vae/diffusion_pytorch_model.bin: pickled weights are not loaded"),
    ("base model not JSON", ["create", "--base-model", "{f}/m_json"], 2, "m_json/model_index.json: not valid JSON"),
    ("truncated single file", ["create", "--base-model", "{f}/single.safetensors"], 2,
     "single.safetensors: truncated or not a safetensors file"),
    # photos that must be refused, across the commands that read photos
    ("empty", ["generate", "--reference", "{f}/empty.png", *MODEL[:4]], 2, "empty.png: file is empty"),
    ("truncated photo", ["relight", "--image", "{f}/truncated.png", "--depth", D], 2,
     "truncated.png: not a readable image (image file is truncated)"),
    ("non-image", ["export", "--image", "{f}/text.png", "--depth", D], 2,
     "text.png: not a readable image (cannot identify image file"),
    ("text file", ["estimate-depth", "--image", "{f}/notes.txt", *MODEL], 2, "notes.txt: not an image file name"),
    ("wrong extension", ["relight", "--image", "{f}/png_named.txt", "--depth", D], 2,
     "png_named.txt: not an image file name (expected one of .png, .jpg"),
    ("bomb as mask", ["edit", "--image", "{f}/good.png", "--edited-depth", D, "--mask", "{f}/bomb.png", *MODEL], 2,
     "bomb.png: image has 1,600,000,000 pixels"),
    ("tiny reference", ["depth-to-image", "--depth", D, "--reference", "{f}/one.png", *MODEL], 2,
     "one.png: image is 1x1 pixels, too small"),
    ("--max-pixels", ["--max-pixels", "1000", "relight", "--image", "{f}/good.png", "--depth", D], 2,
     "good.png: image has 64x48 = 3,072 pixels, more than the limit of 1,000"),
    # depth maps that must be refused
    ("1x1 depth", ["relight", "--image", "{f}/good.png", "--depth", "{f}/depth1.npy"], 2,
     "depth1.npy: depth map is 1x1 pixels, too small to process (at least 2x2 needed)"),
    ("pickled depth", ["export", "--image", "{f}/good.png", "--depth", "{f}/objects.npy"], 2,
     "objects.npy: holds Python objects (pickled data is never loaded)"),
    ("truncated depth", ["depth-to-image", "--depth", "{f}/truncated.npy", "--reference", "{f}/good.png", *MODEL], 2,
     "truncated.npy: not a readable depth map (Failed to read all data"),
    ("png named .npy", ["depth-to-image", "--depth", "{f}/png_named.npy", "--reference", "{f}/good.png", *MODEL], 2,
     "png_named.npy: not a .npy file"),
    ("png named .exr", ["export", "--image", "{f}/good.png", "--depth", "{f}/png_named.exr"], 2,
     "png_named.exr: not an OpenEXR file"),
    ("8-bit depth png", ["relight", "--image", "{f}/good.png", "--depth", "{f}/good.png"], 2,
     "good.png: depth PNG must be 16-bit grayscale, found mode RGB"),
    # the other commands' files
    ("evaluate", ["evaluate", "depth", "--pred", "{f}/pred", "--gt", "{f}/gt", "--out", "{out}/m.json"], 2,
     "pred/a.npy: not a .npy file"),
    ("camera JSON", ["render-depth", "--mesh", "{f}/garbage.obj", "--camera", "{f}/camera.json"], 2,
     "camera.json: not valid JSON"),
    ("track frames", ["track", "--video", "{f}/frames", "--landmarks", "{f}/landmarks.json"], 2,
     "f001.png: not a readable image (image file is truncated)"),
    ("track landmarks", ["track", "--video", "{f}/frames/f000.png", "--landmarks", "{f}/landmarks.json"], 2,
     "f000.png: not a readable video"),
    ("train config", ["train", "--config", "{f}/broken.yaml", "--output-dir", "{out}"], 2,
     "broken.yaml: not valid YAML"),
    ("train manifest", ["train", "--config", str(CONFIGS / "tiny_stage1.yaml"), "--output-dir", "{out}",
                        "--set", "data.root={f}/data"], 2, "manifest.jsonl line 1: not valid JSON"),
    ("synth", ["synth", "--size", "7"], 2, "--size must be a multiple of 8 and >= 16, got 7"),
    ("demo", ["demo", "--subjects", "3"], 2, "--subjects must be >= 8"),
]
NEEDS_OUT = {"estimate-depth", "generate", "edit", "relight", "export", "depth-to-image", "create", "render-depth",
             "track", "synth", "demo"}


def _argv(template: list[str], files: Path, model: Path, out: Path) -> list[str]:
    argv = [a.format(f=files, model=model, out=out) for a in template]
    command = next(a for a in argv if not a.startswith("-") and not a.isdigit())
    return argv + (["--out", str(out)] if command in NEEDS_OUT else [])


def _error_lines(err: str) -> list[str]:
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(("argv", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(argv, status, message, files, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_argv(argv, files, tiny_model_dir, out)) == status
    err = capsys.readouterr().err
    (line,) = _error_lines(err)
    assert message in line, line
    assert "Traceback" not in err and "unexpected" not in line
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not written, written


def test_debug_prints_the_traceback_too(files, capsys):
    assert main(["--debug", "relight", "--image", str(files / "truncated.png"), "--depth", str(files / "depth.npy"),
                 "--out", str(files / "never")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "InputError" in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "truncated.png" in err


@pytest.mark.parametrize("name", GOOD_PHOTOS)
def test_image_kinds_users_have_work(name, files, tmp_path):
    assert main(["relight", "--image", str(files / name), "--depth", str(files / "depth.npy"),
                 "--out", str(tmp_path)]) == 0
    stem = name.rsplit(".", 1)[0]
    with PIL.Image.open(tmp_path / f"{stem}_relit.png") as im:
        assert im.size == (W, H) and im.mode == "RGB"  # EXIF-rotated to the displayed size


def test_a_folder_mixing_good_and_bad_files(files, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["estimate-depth", "--image", str(files / "mixed"), *_argv(MODEL, files, tiny_model_dir, out),
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert f"wrote {len(GOOD_PHOTOS)} of {len(GOOD_PHOTOS) + len(BAD_PHOTOS)} inputs" in captured.out
    lines = _error_lines(captured.err)
    assert len(lines) == len(BAD_PHOTOS)  # one line per bad file, each naming it and its problem
    for name, problem in BAD_PHOTOS.items():
        assert any(f"{name}: " in line and problem in line for line in lines), (name, lines)
    for name in GOOD_PHOTOS:
        assert np.load(out / f"{name.rsplit('.', 1)[0]}_depth.npy").shape == (H, W)
    assert not any("notes" in p.name for p in out.iterdir())


@pytest.fixture
def tiny_tmpfs(mount_tmpfs):
    return mount_tmpfs("8k")


def test_disk_full_is_one_line_and_leaves_no_partial_file(files, tiny_model_dir, tiny_tmpfs, capsys):
    out = tiny_tmpfs / "out"
    assert main(["estimate-depth", "--image", str(files / "good.png"), *_argv(MODEL, files, tiny_model_dir, out),
                 "--out", str(out)]) == 3
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == f"error: {out}/good_depth.npy: no space left on device (the partial file was removed)"
    assert not (out / "good_depth.npy").exists()


def _address_space() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))


def test_out_of_memory_is_one_line(files, tiny_model_dir, tmp_path, capsys):
    """A real allocation failure: this process may grow by 1 GiB more; a 4096 px latent batch needs more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    argv = ["estimate-depth", "--image", str(files / "good.png"), "--model", str(tiny_model_dir), "--steps", "1",
            "--processing-resolution", "4096", "--vae-tiling", "off", "--out", str(tmp_path)]  # tiling bounds memory
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + 2**30, hard))
    try:
        status = main(argv)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    err = capsys.readouterr().err
    (line,) = _error_lines(err)
    assert status == 3, err[-2000:]
    assert line.startswith("error: out of memory (") and "--processing-resolution" in line
    assert "Traceback" not in err


def test_failure_descriptions():
    """Exceptions of the libraries underneath, mapped to one line and a status (no traceback)."""
    import errno

    from safetensors import SafetensorError

    from jointportrait.cli.failures import describe

    cases = [
        (MemoryError(), 3, "out of memory"),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), 3, "out of memory"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1610612736 bytes"), 3,
         "out of memory (DefaultCPUAllocator"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 3, "out of memory (CUDA"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.png"), 3, "/data/x.png: no space left on device"),
        (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"), 3,
         "no space left on device while writing to OUT"),
        (json.JSONDecodeError("Expecting value", "{", 1), 2, "not valid JSON (Expecting value at line 1 column 2)"),
        (PermissionError(errno.EACCES, "Permission denied", "/root/m"), 2, "/root/m: permission denied"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ZeroDivisionError("division by zero"), 1, "unexpected ZeroDivisionError: division by zero (rerun with"),
    ]
    for exc, status, text in cases:
        failure = describe(exc, "OUT")
        assert failure.exit_code == status and text in failure.message and "\n" not in failure.message, failure
