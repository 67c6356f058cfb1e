"""Checks of a model folder's files before diffusers reads them (DESIGN.md, "Fixed conventions").

A model folder is loaded from safetensors only: a pickled weights file
(``.bin``, ``.pt``, ``.ckpt``, ...) can run code when it is read, so a folder
whose weights exist only in such a file is refused. Before anything is loaded,
every JSON file must parse and every ``.safetensors`` file must be complete: its
header is read and every tensor's byte range checked against the file size, so
a truncated download is named (file and sizes) instead of surfacing as a chain
of tracebacks from inside diffusers. Reading headers costs milliseconds; the
tensor bytes are not hashed (a flipped bit inside the data is not caught here;
training checkpoints carry content hashes for that,
:mod:`jointportrait.training.checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from jointportrait.errors import InputError, JointPortraitError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on the JSON header
# bytes per element of the safetensors dtypes; sub-byte float formats are left out (bounds are still checked)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
               "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}


def read_json(path: str | os.PathLike) -> object:
    """A JSON file's content; an :class:`InputError` naming the file, line and column when it does not parse."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid JSON (not UTF-8 text)") from None


def check_safetensors(path: str | os.PathLike) -> None:
    """Refuse a ``.safetensors`` file that is truncated, padded or whose header is not valid.

    Layout: 8 bytes little-endian header length ``n``, ``n`` bytes of JSON, then
    the tensor data; every tensor's ``data_offsets`` must lie inside the data and
    together they must cover it exactly.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise InputError(f"{path}: truncated safetensors file ({size} bytes, not even a header)")
        n = int.from_bytes(prefix, "little")
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise InputError(f"{path}: truncated or not a safetensors file (header claims {n:,} bytes; "
                             f"the file has {size:,})")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: corrupt safetensors file (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: corrupt safetensors file (its header is not a JSON object)")
    data_bytes = size - 8 - n
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in entry["data_offsets"])
            shape = [int(x) for x in entry["shape"]]
            dtype = str(entry["dtype"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: corrupt safetensors file (bad header entry for tensor {name!r})") from None
        if not 0 <= begin <= stop or any(d < 0 for d in shape):
            raise InputError(f"{path}: corrupt safetensors file (bad offsets or shape of tensor {name!r})")
        if dtype in DTYPE_BYTES and stop - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise InputError(f"{path}: corrupt safetensors file (tensor {name!r}: {stop - begin} bytes for "
                             f"shape {shape} of {dtype})")
        end = max(end, stop)
    if end > data_bytes:
        raise InputError(f"{path}: truncated safetensors file ({size:,} bytes; its header needs {8 + n + end:,})")
    if end < data_bytes:
        raise InputError(f"{path}: corrupt safetensors file ({data_bytes - end:,} bytes after the last tensor)")


def check_component_folder(folder: str | os.PathLike) -> None:
    """One component folder (``unet/``, ``vae/``, ...): JSON files parse, weights are complete safetensors.

    A folder with pickled weights and no safetensors is refused.
    """
    folder = Path(folder)
    for path in sorted(folder.glob("*.json")):
        read_json(path)
    weights = sorted(folder.glob("*.safetensors"))
    pickles = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles and not weights:
        raise InputError(f"{pickles[0]}: pickled weights are not loaded (a pickle can run code when read); "
                         "convert the folder to safetensors")
    for path in weights:
        check_safetensors(path)


def check_model_folder(root: str | os.PathLike, components: Iterable[str] | None = None) -> None:
    """Check ``root``'s own JSON files and each component subfolder that exists (``unet``, ``vae``, ...;
    None: every subfolder)."""
    root = Path(root)
    for path in sorted(root.glob("*.json")):
        read_json(path)
    if components is None:
        components = sorted(p.name for p in root.iterdir() if p.is_dir())
    for name in components:
        if (root / name).is_dir():
            check_component_folder(root / name)


@contextlib.contextmanager
def model_load_errors(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn what diffusers / transformers raise on unreadable files into one :class:`InputError` naming ``path``."""
    from safetensors import SafetensorError

    try:
        yield
    except JointPortraitError:
        raise
    except (OSError, ValueError, SafetensorError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if len(reason) > 240:
            reason = reason[:240] + "..."
        raise InputError(f"{path}: cannot be loaded as {what} ({reason})") from exc
