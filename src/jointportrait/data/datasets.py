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
silhouette; masks are resampled by area and thresholded at 0.5.

Draws. What is random about an item (its reference frame, its crop, and in a
:class:`MixedDataset` which source item it is) is drawn anew every time the item
is drawn, so that over a run a frame meets every other frame of its subject as
reference, and every crop. A training sampler indexes the datasets with a
:class:`Draw` (item, epoch, run-wide sample number); the randomness of a draw is
``numpy.random.default_rng([seed, item, ..., sample])``, so the same seed and
sample counter give the same samples in any order, in any worker and after a
resume. A plain ``int`` index is one fixed draw of that item (``rng([seed,
index])``), for validation and evaluation.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Draw:
    """One draw of a training item: ``index`` into the dataset, the sampler's ``epoch`` and ``sample``, the
    run-wide number of this draw (:class:`jointportrait.training.data.StepBatchSampler`)."""

    index: int
    epoch: int
    sample: int


class DrawDataset(Dataset):
    """A dataset whose items are drawn anew each time: ``dataset[Draw(i, epoch, sample)]`` is draw ``sample``
    of item ``i``; ``dataset[i]`` is one fixed draw of it (validation, evaluation)."""


def key_index(key: int | Draw) -> int:
    """The item index of a dataset key."""
    return key.index if isinstance(key, Draw) else int(key)


def draw_rng(seed: int, key: int | Draw) -> np.random.Generator:
    """The generator of one draw: ``rng([seed, index, 1, sample])`` for a :class:`Draw`, ``rng([seed, index])``
    for an int (the fixed draw)."""
    if isinstance(key, Draw):
        return np.random.default_rng([seed, key.index, 1, key.sample])
    return np.random.default_rng([seed, int(key)])


Crop = tuple[float, float] | None  # where the window sits in its free range: (top, left) fractions in [0, 1); None = centre


def scaled_size(height: int, width: int, size: int) -> tuple[float, int, int]:
    """Scale factor and ``(new_h, new_w)`` after scaling the short side to ``size``."""
    scale = size / min(height, width)
    return scale, max(size, round(height * scale)), max(size, round(width * scale))


def crop_positions(height: int, width: int, size: int) -> int:
    """How many different ``size`` windows a ``height`` x ``width`` frame has (1: the crop is fixed)."""
    _, new_h, new_w = scaled_size(height, width, size)
    return (new_h - size + 1) * (new_w - size + 1)


def crop_box(height: int, width: int, size: int, crop: Crop) -> tuple[float, int, int]:
    """Scale factor and top-left corner of the ``size`` window after scaling the short side to ``size``.

    ``crop``: ``(u, v)`` in [0, 1) picks the corner ``(floor(u (new_h - size + 1)), floor(v (new_w - size + 1)))``
    (uniform over the windows for uniform ``u, v``); None takes the centre.
    """
    scale, new_h, new_w = scaled_size(height, width, size)
    if crop is None:
        return scale, (new_h - size) // 2, (new_w - size) // 2
    u, v = crop
    return (scale, min(int(u * (new_h - size + 1)), new_h - size), min(int(v * (new_w - size + 1)), new_w - size))


def draw_crop(rng: np.random.Generator, random_crop: bool) -> Crop:
    """A random window position (``random_crop``), or None (the centre)."""
    return (float(rng.random()), float(rng.random())) if random_crop else None


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


@dataclass(frozen=True)
class FramePair:
    """What one draw of a :class:`FrameDataset` item is made of: the frame, its reference frame (record
    indices) and where each is cropped."""

    frame: int
    reference: int
    crop: Crop
    reference_crop: Crop


class FrameDataset(DrawDataset):
    """Single frames with a reference image of the same subject (paper Sec. 3.2 training pairs).

    Every draw picks the reference anew, uniformly among the subject's other
    frames (any clip; the frame itself when the subject has one frame only), and,
    with ``random_crop``, a window for the frame and one for the reference
    (:meth:`pair`, from :func:`draw_rng`).
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

    def reference_index(self, index: int, rng: np.random.Generator) -> int:
        others = [i for i in self.by_subject[self.records[index].subject] if i != index]
        return int(others[rng.integers(len(others))]) if others else index

    def pair(self, key: int | Draw) -> FramePair:
        """The frame, reference and crops of draw ``key`` (no file is read)."""
        index = key_index(key)
        if not 0 <= index < len(self.records):
            raise IndexError(index)
        rng = draw_rng(self.seed, key)
        reference = self.reference_index(index, rng)
        return FramePair(index, reference, draw_crop(rng, self.random_crop), draw_crop(rng, self.random_crop))

    def frame(self, index: int, crop: Crop) -> dict[str, torch.Tensor]:
        """The contract's tensors of record ``index`` cut at ``crop``."""
        arrays = load_frame(self.records[index])
        h, w = arrays["valid"].shape
        return frame_tensors(resize_and_crop(arrays, self.size, crop_box(h, w, self.size, crop)))

    def fixed_frame(self, index: int) -> dict[str, torch.Tensor]:
        """The tensors of record ``index`` when no draw changes them (no ``random_crop``, or a frame that
        scales to exactly ``size`` x ``size``); an :class:`InputError` otherwise (used by the latent cache)."""
        arrays = load_frame(self.records[index])
        h, w = arrays["valid"].shape
        if self.random_crop and crop_positions(h, w, self.size) > 1:
            raise InputError(f"{self.records[index].where}: {w}x{h} frames have {crop_positions(h, w, self.size)} "
                             f"random {self.size} px crops; caching latents needs frames of the training "
                             f"resolution (or no random crop)")
        return frame_tensors(resize_and_crop(arrays, self.size, crop_box(h, w, self.size, None)))

    def __getitem__(self, key: int | Draw) -> dict:
        pair = self.pair(key)
        sample = self.frame(pair.frame, pair.crop)
        sample["reference"] = self.frame(pair.reference, pair.reference_crop)["image"]
        sample["subject"] = self.records[pair.frame].subject
        sample["index"] = pair.frame
        return sample


class ClipDataset(DrawDataset):
    """Windows of ``num_motion_frames + num_frames`` consecutive frames of a clip (paper Sec. 5.1: 14 frames,
    the 4 ground-truth frames before them are the motion frames).

    Returns ``image``, ``depth``, ``valid``, ``skin_mask``, ``depth_raw`` of the
    ``num_frames`` frames (T, C, H, W), the same keys prefixed ``motion_`` for
    the motion frames, ``reference`` (3, H, W) (a frame of the same subject
    outside the window when there is one, else the clip's first frame),
    ``subject``, ``clip`` and ``index``. One crop for the whole window.
    Windows start every ``stride`` frames (default: ``num_frames``). Like
    :class:`FrameDataset`, every draw picks the reference, the window's crop
    and the reference's crop anew (from :func:`draw_rng`).
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

    def __getitem__(self, key: int | Draw) -> dict:
        index = key_index(key)
        rng = draw_rng(self.seed, key)
        name, start = self.windows[index]
        window = self.clips[name][start : start + self.num_motion_frames + self.num_frames]
        subject = window[0].subject
        outside = [r for r in self.subject_frames[subject] if r not in window]
        ref_record = outside[rng.integers(len(outside))] if outside else window[0]
        crop, ref_crop = draw_crop(rng, self.random_crop), draw_crop(rng, self.random_crop)
        frames = [load_frame(r) for r in window]
        h, w = frames[0]["valid"].shape
        box = crop_box(h, w, self.size, crop)
        tensors = [frame_tensors(resize_and_crop(f, self.size, box)) for f in frames]
        sample: dict = {}
        for key in tensors[0]:
            stacked = torch.stack([t[key] for t in tensors])  # (M + T, C, H, W)
            sample[f"motion_{key}"] = stacked[: self.num_motion_frames]
            sample[key] = stacked[self.num_motion_frames :]
        ref = load_frame(ref_record)
        rh, rw = ref["valid"].shape
        sample["reference"] = frame_tensors(resize_and_crop(ref, self.size, crop_box(rh, rw, self.size, ref_crop)))[
            "image"]
        sample.update(subject=subject, clip=name, index=index)
        return sample


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` by largest remainder (ties to the earlier source)."""
    w = np.asarray(weights, np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = sorted(range(len(w)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in order[: total - int(counts.sum())]:
        counts[k] += 1
    return counts.tolist()


class MixedDataset(DrawDataset):
    """A weighted mix of datasets (paper Sec. 5.1: studio + in-the-wild) whose epochs reach every item.

    An epoch is ``length`` positions (default: the sum of the datasets' lengths). Source ``k`` owns
    ``n_k`` of them, ``length`` apportioned by the weights (:func:`apportion`), at places shuffled per
    epoch with ``rng([seed, epoch, 2])``. Each source is drawn as a stream: its ``j``-th draw of the run
    (``j = epoch * n_k + c`` for its ``c``-th position of the epoch) is item ``perm_{k,q}[j mod N_k]`` with
    ``q = j // N_k`` and ``perm_{k,q}`` a permutation of its ``N_k`` items seeded with ``(seed, k, q)``.
    So every epoch holds exactly ``n_k`` draws of source ``k``, every pass ``q`` over a source visits each
    of its items exactly once, and a source is covered within ``ceil(N_k / n_k)`` epochs.

    Keys: a :class:`Draw` from the sampler (its ``index`` is the position in epoch ``epoch``; the source
    item is drawn with ``Draw(item, q, sample)``, so its reference and crop are new too) or an ``int``
    (a position of epoch 0, with the source's fixed draw). Samples gain ``dataset`` (= ``k``).
    """

    def __init__(self, datasets: Sequence[tuple[Dataset, float]], length: int | None = None, seed: int = 0) -> None:
        if not datasets:
            raise InputError("MixedDataset needs at least one (dataset, weight) pair")
        weights = np.array([float(w) for _, w in datasets])
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise InputError(f"MixedDataset weights must be >= 0 with a positive sum, got {weights.tolist()}")
        self.datasets = [d for d, _ in datasets]
        self.length = length if length is not None else sum(len(d) for d in self.datasets)
        if self.length < 1:
            raise InputError(f"MixedDataset length must be >= 1, got {self.length}")
        self.quotas = apportion(self.length, weights)
        empty = [k for k, (d, n) in enumerate(zip(self.datasets, self.quotas)) if n > 0 and len(d) == 0]
        if empty:
            raise InputError(f"MixedDataset: dataset {empty[0]} is empty but has a positive weight")
        self.seed = seed
        self._layout: tuple[int, np.ndarray, np.ndarray] | None = None  # last epoch's (epoch, labels, ranks)
        self._orders: dict[tuple[int, int], np.ndarray] = {}  # (source, pass) -> item order

    def __len__(self) -> int:
        return self.length

    def epoch_layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, ranks)`` ``(length,)`` of epoch ``epoch``: the source of every position, and how many
        earlier positions of the epoch belong to the same source."""
        if self._layout is None or self._layout[0] != epoch:
            labels = np.repeat(np.arange(len(self.datasets)), self.quotas)
            np.random.default_rng([self.seed, epoch, 2]).shuffle(labels)
            ranks = np.empty(self.length, np.int64)
            for k in range(len(self.datasets)):
                where = np.flatnonzero(labels == k)
                ranks[where] = np.arange(where.size)
            self._layout = (epoch, labels, ranks)
        return self._layout[1], self._layout[2]

    def _pass_order(self, k: int, q: int) -> np.ndarray:
        """The item order of pass ``q`` over source ``k`` (the last few are kept: an epoch's draws of a source
        can straddle two passes, visited in shuffled order)."""
        if (k, q) not in self._orders:
            if len(self._orders) >= 4 * len(self.datasets):
                del self._orders[next(iter(self._orders))]  # the oldest
            self._orders[(k, q)] = np.random.default_rng([self.seed, k, q, 3]).permutation(len(self.datasets[k]))
        return self._orders[(k, q)]

    def route(self, key: int | Draw) -> tuple[int, int | Draw]:
        """``(k, key of source k)`` of mixed key ``key`` (see the class docstring)."""
        position = key_index(key)
        if not 0 <= position < self.length:
            raise IndexError(position)
        epoch = key.epoch if isinstance(key, Draw) else 0
        labels, ranks = self.epoch_layout(epoch)
        k = int(labels[position])
        q, r = divmod(epoch * self.quotas[k] + int(ranks[position]), len(self.datasets[k]))
        item = int(self._pass_order(k, q)[r])
        if isinstance(key, Draw) and isinstance(self.datasets[k], DrawDataset):
            return k, Draw(item, q, key.sample)
        return k, item

    def __getitem__(self, key: int | Draw) -> dict:
        k, sub = self.route(key)
        sample = dict(self.datasets[k][sub])
        sample["dataset"] = k
        return sample
