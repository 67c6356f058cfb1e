"""Training datasets over manifests (paper Sec. 5.1: studio + in-the-wild data, 512x512, 25 fps clips).

Every sample is a dict of tensors (the dataset contract of the project):
``image`` (3, H, W) in [-1, 1]; ``depth`` (1, H, W) normalised by
:func:`jointportrait.depth_codec.normalize_depth` over ``valid`` (+1 outside);
``valid`` (1, H, W) float {0, 1}; ``skin_mask`` (1, H, W) float (ones when the
manifest gives none); ``depth_raw`` (1, H, W) float32 in the manifest's units
times ``depth_scale`` (0 outside ``valid``); ``reference`` (3, H, W) in [-1, 1],
another frame or view of the same subject; ``subject`` (str) and ``index`` (int).
:class:`ClipDataset` stacks frames along a leading time axis (T, C, H, W).

Resizing and cropping are paired: the short side is scaled to ``size`` (a
multiple of 8), then a ``size`` x ``size`` window is cut (centred, or at a
random place with ``random_crop``). Depth is resampled as a masked average
(``resize(d * v) / resize(v)``) so that background never bleeds into the
silhouette; masks are resampled by area and thresholded at 0.5. All randomness
is ``numpy.random.default_rng([seed, index, ...])``: the same seed gives the
same samples in any order and in any worker.
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from jointportrait.data.manifest import FrameRecord, read_manifest
from jointportrait.depth_codec import normalize_depth
from jointportrait.errors import InputError, JointPortraitError
from jointportrait.io import load_depth, load_image


def check_size(size: int) -> int:
    if not isinstance(size, int) or size < 8 or size % 8:
        raise InputError(f"size must be a positive multiple of 8, got {size!r}")
    return size


def _load_mask(path, where: str, shape: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as img:
            mask = np.asarray(img.convert("L")) >= 128
    except OSError as exc:
        raise InputError(f"{where}: mask {path} is not a readable image ({exc})") from None
    if mask.shape != shape:
        raise InputError(f"{where}: mask {path} is {mask.shape[1]}x{mask.shape[0]}, the image "
                         f"{shape[1]}x{shape[0]}")
    return mask


def load_frame(record: FrameRecord) -> dict[str, np.ndarray]:
    """Full-size arrays of one record: image (H, W, 3) uint8, depth (H, W) float32 (scaled), valid and
    skin (H, W) bool. Errors name the file and the manifest line."""
    where = record.where
    try:  # files may have gone since the manifest was read: name the line too
        image = np.array(load_image(record.image))
        depth = load_depth(record.depth) * record.depth_scale
    except JointPortraitError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    shape = image.shape[:2]
    if depth.shape != shape:
        raise InputError(f"{where}: depth {record.depth} is {depth.shape[1]}x{depth.shape[0]}, the image "
                         f"{shape[1]}x{shape[0]}")
    valid = _load_mask(record.mask, where, shape)
    if not np.isfinite(depth[valid]).all():
        raise InputError(f"{where}: depth {record.depth} has NaN/inf inside its mask")
    skin = _load_mask(record.skin_mask, where, shape) & valid if record.skin_mask else np.ones(shape, bool)
    return {"image": image, "depth": np.where(valid, depth, 0.0).astype(np.float32), "valid": valid, "skin": skin}


def crop_box(height: int, width: int, size: int, rng: np.random.Generator | None) -> tuple[float, int, int]:
    """Scale factor and top-left corner of the ``size`` window after scaling the short side to ``size``."""
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if rng is None:
        return scale, (new_h - size) // 2, (new_w - size) // 2
    return scale, int(rng.integers(0, new_h - size + 1)), int(rng.integers(0, new_w - size + 1))


def resize_and_crop(frame: dict[str, np.ndarray], size: int, box: tuple[float, int, int]) -> dict[str, np.ndarray]:
    """Paired resize + crop of a :func:`load_frame` dict to ``size`` x ``size``."""
    scale, top, left = box
    h, w = frame["valid"].shape
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    out = dict(frame)
    if (new_h, new_w) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        valid = frame["valid"].astype(np.float32)
        num = cv2.resize(frame["depth"] * valid, (new_w, new_h), interpolation=interp)
        den = cv2.resize(valid, (new_w, new_h), interpolation=interp)
        out["valid"] = den >= 0.5
        out["depth"] = np.where(out["valid"], num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
        out["image"] = cv2.resize(frame["image"], (new_w, new_h), interpolation=interp)
        skin = cv2.resize(frame["skin"].astype(np.float32), (new_w, new_h), interpolation=interp)
        out["skin"] = (skin >= 0.5) & out["valid"] if not frame["skin"].all() else np.ones((new_h, new_w), bool)
    window = (slice(top, top + size), slice(left, left + size))
    return {k: v[window] for k, v in out.items()}


def frame_tensors(frame: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Arrays of one (cropped) frame -> the contract's tensors."""
    image = torch.from_numpy(np.ascontiguousarray(frame["image"])).permute(2, 0, 1).float() / 127.5 - 1.0
    valid = torch.from_numpy(np.ascontiguousarray(frame["valid"]))[None].float()  # (1, H, W)
    depth_raw = torch.from_numpy(np.ascontiguousarray(frame["depth"]))[None]  # (1, H, W)
    return {
        "image": image,  # (3, H, W)
        "depth": normalize_depth(depth_raw[None], valid[None])[0],  # (1, H, W)
        "valid": valid,
        "skin_mask": torch.from_numpy(np.ascontiguousarray(frame["skin"]))[None].float(),
        "depth_raw": depth_raw * valid,
    }


def _select(records: list[FrameRecord], split: str | None, source: str | None) -> list[FrameRecord]:
    chosen = [r for r in records if (split is None or r.split == split) and (source is None or r.source == source)]
    if not chosen:
        raise InputError(f"{records[0].manifest}: no records with split={split!r} source={source!r}")
    return chosen


class FrameDataset(Dataset):
    """Single frames with a reference image of the same subject (paper Sec. 3.2 training pairs).

    The reference is another frame of the same subject (any clip) chosen with
    ``rng([seed, index])``; when a subject has one frame only it is that frame.
    """

    def __init__(self, root: str | os.PathLike, size: int = 512, split: str | None = None,
                 source: str | None = None, random_crop: bool = False, seed: int = 0) -> None:
        self.root = root
        self.size = check_size(size)
        self.records = _select(read_manifest(root), split, source)
        self.random_crop = random_crop
        self.seed = seed
        self.by_subject: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(self.records):
            self.by_subject[r.subject].append(i)

    def __len__(self) -> int:
        return len(self.records)

    def _crop(self, frame: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        h, w = frame["valid"].shape
        return resize_and_crop(frame, self.size, crop_box(h, w, self.size, rng if self.random_crop else None))

    def reference_index(self, index: int, rng: np.random.Generator) -> int:
        others = [i for i in self.by_subject[self.records[index].subject] if i != index]
        return int(others[rng.integers(len(others))]) if others else index

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        sample = frame_tensors(self._crop(load_frame(self.records[index]), rng))
        ref = self._crop(load_frame(self.records[self.reference_index(index, rng)]), rng)
        sample["reference"] = frame_tensors(ref)["image"]
        sample["subject"] = self.records[index].subject
        sample["index"] = index
        return sample


class ClipDataset(Dataset):
    """Windows of ``num_motion_frames + num_frames`` consecutive frames of a clip (paper Sec. 5.1: 14 frames,
    the 4 ground-truth frames before them are the motion frames).

    Returns ``image``, ``depth``, ``valid``, ``skin_mask``, ``depth_raw`` of the
    ``num_frames`` frames (T, C, H, W), the same keys prefixed ``motion_`` for
    the motion frames, ``reference`` (3, H, W) (a frame of the same subject
    outside the window when there is one, else the clip's first frame),
    ``subject``, ``clip`` and ``index``. One crop for the whole window.
    Windows start every ``stride`` frames (default: ``num_frames``).
    """

    def __init__(self, root: str | os.PathLike, size: int = 512, num_frames: int = 14, num_motion_frames: int = 4,
                 stride: int | None = None, split: str | None = None, source: str | None = None,
                 random_crop: bool = False, seed: int = 0) -> None:
        self.size = check_size(size)
        self.num_frames, self.num_motion_frames = num_frames, num_motion_frames
        self.random_crop, self.seed = random_crop, seed
        records = _select(read_manifest(root), split, source)
        clips: dict[str, list[FrameRecord]] = defaultdict(list)
        for r in records:
            if r.clip is not None:
                clips[r.clip].append(r)
        window = num_frames + num_motion_frames
        stride = stride or num_frames
        self.clips = {k: sorted(v, key=lambda r: r.frame) for k, v in sorted(clips.items())}
        self.windows: list[tuple[str, int]] = []
        for name, frames in self.clips.items():
            numbers = [r.frame for r in frames]
            for start in range(0, len(frames) - window + 1, stride):
                if numbers[start + window - 1] - numbers[start] == window - 1:  # consecutive frames only
                    self.windows.append((name, start))
        if not self.windows:
            raise InputError(f"{root}: no clip has {window} consecutive frames "
                             f"({num_frames} + {num_motion_frames} motion frames)")
        self.subject_frames: dict[str, list[FrameRecord]] = defaultdict(list)
        for r in records:
            self.subject_frames[r.subject].append(r)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        name, start = self.windows[index]
        window = self.clips[name][start : start + self.num_motion_frames + self.num_frames]
        frames = [load_frame(r) for r in window]
        h, w = frames[0]["valid"].shape
        box = crop_box(h, w, self.size, rng if self.random_crop else None)
        tensors = [frame_tensors(resize_and_crop(f, self.size, box)) for f in frames]
        sample: dict = {}
        for key in tensors[0]:
            stacked = torch.stack([t[key] for t in tensors])  # (M + T, C, H, W)
            sample[f"motion_{key}"] = stacked[: self.num_motion_frames]
            sample[key] = stacked[self.num_motion_frames :]
        subject = window[0].subject
        outside = [r for r in self.subject_frames[subject] if r not in window]
        ref_record = outside[rng.integers(len(outside))] if outside else window[0]
        ref = load_frame(ref_record)
        rh, rw = ref["valid"].shape
        sample["reference"] = frame_tensors(resize_and_crop(ref, self.size, crop_box(rh, rw, self.size, None)))[
            "image"]
        sample.update(subject=subject, clip=name, index=index)
        return sample


class MixedDataset(Dataset):
    """A weighted mix of datasets (paper Sec. 5.1: studio + in-the-wild): item ``i`` comes from dataset ``k``
    with probability ``w_k / sum(w)``, and from a uniformly chosen item of it; both choices use
    ``rng([seed, i])``. ``length`` defaults to the sum of the datasets' lengths. Samples gain ``dataset``."""

    def __init__(self, datasets: Sequence[tuple[Dataset, float]], length: int | None = None, seed: int = 0) -> None:
        if not datasets:
            raise InputError("MixedDataset needs at least one (dataset, weight) pair")
        weights = np.array([float(w) for _, w in datasets])
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise InputError(f"MixedDataset weights must be >= 0 with a positive sum, got {weights.tolist()}")
        self.datasets = [d for d, _ in datasets]
        self.cumulative = np.cumsum(weights / weights.sum()).tolist()
        self.length = length if length is not None else sum(len(d) for d in self.datasets)
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset, item) of mixed item ``index``."""
        rng = np.random.default_rng([self.seed, index])
        k = min(bisect.bisect_right(self.cumulative, rng.random()), len(self.datasets) - 1)
        return k, int(rng.integers(len(self.datasets[k])))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        k, item = self.locate(index)
        sample = dict(self.datasets[k][item])
        sample["dataset"] = k
        return sample
