"""``jointportrait track --clips``: a folder of clips over shards and worker processes, resumable, merged into
one manifest that the training datasets read (paper Sec. 5.1 at dataset scale)."""

from __future__ import annotations

import json
import os
import random
from dataclasses import fields

import numpy as np
import pytest
import torch
from PIL import Image

from jointportrait.cli import track_dataset
from jointportrait.cli.main import main
from jointportrait.data.datasets import ClipDataset, FrameDataset
from jointportrait.data.manifest import read_manifest
from jointportrait.errors import InputError, MissingPathError
from jointportrait.face_models import load_face_model
from jointportrait.tracking.dataset_folder import DONE_NAME, merge_shards
from jointportrait.tracking.evaluation import load_synthetic_clip
from jointportrait.tracking.params import TrackParams
from jointportrait.tracking.shards import ClipSource, Shard, list_clips, parse_shard, shard_clips
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import track_clip

CLIPS = 4


def _save_as_archive(model, path):
    """The face model as an ICT-style archive (the keys :func:`read_ict_npz` reads)."""
    np.savez(path, neutral_vertices=model.neutral.numpy(), identity_modes=model.identity_basis.numpy(),
             expression_blendshapes=model.blendshapes.numpy(), expression_names=np.array(model.blendshape_names),
             triangles=model.triangles.numpy(), triangle_material=model.triangle_material.numpy(),
             material_names=np.array(model.material_names), vertex_region=model.vertex_region.numpy(),
             region_names=np.array(model.region_names), landmarks_68=model.landmark_indices.numpy())
    return path


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, synthetic_video):
    """Four 2-frame clips (96 px, the procedural head) as frame folders, with their landmarks in a folder, and
    the head as a model file of this module's own: every process (this one, the workers) then derives its
    expression basis with one thread (the procedural head's basis depends on the thread count: its blendshapes
    have repeated singular values, so the SVD may return any rotation within them)."""
    root = tmp_path_factory.mktemp("clip_folder")
    _save_as_archive(load_face_model("procedural"), root / "head.npz")
    clip = load_synthetic_clip(synthetic_video, load_face_model("procedural"), noise_px=1.0, seed=0)
    for k in range(CLIPS):
        frames = root / "clips" / f"clip{k}"
        frames.mkdir(parents=True)
        for j in range(2):
            Image.fromarray(clip.frames[2 * k + j]).save(frames / f"{j:03d}.png")
        (root / "landmarks").mkdir(exist_ok=True)
        np.save(root / "landmarks" / f"clip{k}.npy", clip.landmarks[2 * k:2 * k + 2])
    return root


def _track(folder, out, *extra):
    return main(["track", "--clips", str(folder / "clips"), "--landmarks", str(folder / "landmarks"),
                 "--out", str(out), *_options(folder), *extra])


def _options(folder):
    return ["--no-photometric", "--face-model", str(folder / "head.npz"), "--threads", "1"]


@pytest.fixture(scope="module")
def single_run(clip_folder, tmp_path_factory):
    """One process, one worker, no shard: tracked and merged in one call."""
    out = tmp_path_factory.mktemp("single") / "out"
    assert _track(clip_folder, out, "--workers", "1") == 0
    return out


def _clip_outputs(out, name):
    """Every per-clip file that does not record timing: depth arrays, masks, images, params and manifest."""
    folder = out / "clips" / name
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    return {k: p.read_bytes() for k, p in files.items() if k not in (DONE_NAME, "overlay.mp4", "overlay.gif")}


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16])
def test_shards_partition_the_clips(count):
    names = [f"{random.Random(count).randrange(10**6):06d}_{k}" for k in range(11)]
    clips = [ClipSource(n, None) for n in random.Random(1).sample(names, len(names))]
    parts = [shard_clips(clips, Shard(i, count)) for i in range(count)]
    seen = [c.name for part in parts for c in part]
    assert sorted(seen) == sorted(names) and len(seen) == len(set(seen))  # union = all, pairwise disjoint
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    # the assignment depends on the names only, not on the order they were listed in
    assert [shard_clips(list(reversed(clips)), Shard(i, count)) for i in range(count)] == parts


@pytest.mark.parametrize("text", ["3/3", "-1/4", "1/0", "a/b", "2", "1/2/3", "", "0.5/2"])
def test_bad_shard_values_are_one_line_errors(text, clip_folder, tmp_path, capsys):
    with pytest.raises(InputError):
        parse_shard(text)
    assert _track(clip_folder, tmp_path / "out", f"--shard={text}") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --shard") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert parse_shard(" 3 / 16 ") == Shard(3, 16)


def test_clip_listing_errors(tmp_path, clip_folder):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "0.png")
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="two clips are named 'a'"):
        list_clips(tmp_path)
    with pytest.raises(MissingPathError, match="no landmarks for clip 'clip0'"):
        list_clips(clip_folder / "clips", tmp_path)
    assert [c.name for c in list_clips(clip_folder / "clips", clip_folder / "landmarks")] == [
        f"clip{k}" for k in range(CLIPS)]


def test_workers_give_the_same_clips(clip_folder, single_run, tmp_path):
    out = tmp_path / "out"
    assert _track(clip_folder, out, "--workers", "2") == 0
    assert (out / "manifest.jsonl").read_text() == (single_run / "manifest.jsonl").read_text()
    for k in range(CLIPS):
        assert _clip_outputs(out, f"clip{k}") == _clip_outputs(single_run, f"clip{k}")


def test_shards_merge_to_the_single_run(clip_folder, single_run, tmp_path, capsys):
    out = tmp_path / "out"
    for i in (2, 0):
        assert _track(clip_folder, out, "--shard", f"{i}/3") == 0
    assert not (out / "manifest.jsonl").exists()
    capsys.readouterr()
    assert main(["track", "--merge", "--out", str(out)]) == 2  # shard 1/3 has not run
    err = capsys.readouterr().err
    assert "1 of 3 shards have not finished (1/3)" in err and err.count("\n") == 1
    assert _track(clip_folder, out, "--shard", "1/3") == 0
    shard_names = [[c["name"] for c in json.loads((out / "shards" / f"shard-000{i}-of-0003.json").read_text())
                    ["clips"]] for i in range(3)]
    assert shard_names == [["clip0", "clip3"], ["clip1"], ["clip2"]]
    assert main(["track", "--merge", "--out", str(out)]) == 0
    assert (out / "manifest.jsonl").read_text() == (single_run / "manifest.jsonl").read_text()
    for k in range(CLIPS):
        assert _clip_outputs(out, f"clip{k}") == _clip_outputs(single_run, f"clip{k}")

    # the merged manifest is a dataset: the training loaders read it as it is
    records = read_manifest(out)
    assert [(r.clip, r.frame) for r in records] == [(f"clip{k}", f) for k in range(CLIPS) for f in (0, 1)]
    assert len(FrameDataset(out, size=32, source="wild")) == 2 * CLIPS
    windows = ClipDataset(out, size=32, num_frames=1, num_motion_frames=1)
    assert len(windows) == CLIPS and windows[0]["depth"].shape == (1, 1, 32, 32)

    # a shard of another split of the folder, or a clip in two shards, is refused
    stale = out / "shards" / "shard-0000-of-0002.json"
    stale.write_text((out / "shards" / "shard-0000-of-0003.json").read_text().replace('"num_shards": 3',
                                                                                     '"num_shards": 2'))
    with pytest.raises(InputError, match="different shard totals"):
        merge_shards(out)
    stale.unlink()
    first = out / "shards" / "shard-0000-of-0003.json"
    shard0 = json.loads(first.read_text())
    first.write_text(json.dumps({**shard0, "clips": shard0["clips"] + [{"name": "clip1", "status": "done"}]}))
    with pytest.raises(InputError, match="clip 'clip1' is in shard 0/3 and in shard 1/3"):
        merge_shards(out)
    first.write_text(json.dumps({**shard0, "clips": shard0["clips"][:1]}))
    with pytest.raises(InputError, match="the shards list 3 clips, but the clip folder had 4"):
        merge_shards(out)


def test_resume_skips_done_clips_and_records_failures(clip_folder, single_run, tmp_path, capsys):
    out = tmp_path / "out"
    landmarks = tmp_path / "landmarks"
    landmarks.mkdir()
    for k in range(CLIPS):
        (landmarks / f"clip{k}.npy").write_bytes((clip_folder / "landmarks" / f"clip{k}.npy").read_bytes())
    bad = np.load(landmarks / "clip1.npy")
    np.save(landmarks / "clip1.npy", bad[:, np.random.default_rng(0).permutation(68)])  # no head explains these
    argv = ["track", "--clips", str(clip_folder / "clips"), "--landmarks", str(landmarks), "--out", str(out), *_options(clip_folder)]
    assert main(argv) == 0
    assert "clip1: failed:" in capsys.readouterr().err
    assert not (out / "clips" / "clip1").exists() and (out / "failed" / "clip1.json").is_file()
    assert [r["clip"] for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())] == [
        "clip0", "clip0", "clip2", "clip2", "clip3", "clip3"]

    # a killed run: clip2's folder gone, a partial folder left behind; the rerun tracks clip2 only
    done_marks = {k: (out / "clips" / f"clip{k}" / DONE_NAME).stat().st_mtime_ns for k in (0, 3)}
    os.rename(out / "clips" / "clip2", out / "clips" / ".clip2.partial-host-123")
    (out / "manifest.jsonl").unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 to track (3 already done or failed)" in printed and "clip2: 2 frames" in printed
    assert {k: (out / "clips" / f"clip{k}" / DONE_NAME).stat().st_mtime_ns for k in (0, 3)} == done_marks
    assert not list((out / "clips").glob(".*"))  # no partial folder is left
    fitted = ("params.npz", "manifest.jsonl", "depth/clip2_f0000.npy", "depth/clip2_f0001.npy")
    assert [_clip_outputs(out, "clip2")[k] for k in fitted] == [_clip_outputs(single_run, "clip2")[k] for k in fitted]

    # --retry-failed tracks the failed clip again (once its landmarks are fixed)
    np.save(landmarks / "clip1.npy", bad)
    assert main([*argv, "--retry-failed"]) == 0
    assert "1 to track" in capsys.readouterr().out
    assert not (out / "failed" / "clip1.json").exists()
    assert (out / "manifest.jsonl").read_text() == (single_run / "manifest.jsonl").read_text()

    # resuming with other options would mix two kinds of clips: refused before anything is tracked
    assert main([*argv, "--size", "128"]) == 2
    err = capsys.readouterr().err
    assert "tracked with other options (size: 256 then, 128 now)" in err and err.count("\n") == 1


def test_an_unexpected_error_keeps_the_shard_open(clip_folder, single_run, tmp_path, monkeypatch, capsys):
    """A clip that stops unexpectedly (a bug, out of memory) is not recorded as failed: the other clips are
    written, the shard exits with status 1 without a shard manifest, and a rerun tracks only that clip."""
    real = track_dataset.track_frames

    def flaky(options, frames, fps, lmk, out, *, name, **kwargs):
        if name.endswith("clip1"):
            raise RuntimeError("CUDA out of memory")
        return real(options, frames, fps, lmk, out, name=name, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(track_dataset, "track_frames", flaky)
    assert _track(clip_folder, out) == 1
    err = capsys.readouterr().err
    assert "clip1: unexpected RuntimeError: CUDA out of memory" in err and "rerun the shard" in err
    assert not (out / "shards").exists() and not (out / "failed").exists() and not (out / "manifest.jsonl").exists()
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["clip0", "clip2", "clip3"]
    monkeypatch.setattr(track_dataset, "track_frames", real)
    assert _track(clip_folder, out) == 0
    assert "1 to track (3 already done or failed)" in capsys.readouterr().out
    assert (out / "manifest.jsonl").read_text() == (single_run / "manifest.jsonl").read_text()


@pytest.mark.parametrize(("device", "message"), [("gpu0", "not a device"), ("mps", "runs on cpu or cuda")])
def test_bad_devices_are_one_line_errors(device, message, clip_folder, tmp_path, capsys):
    assert _track(clip_folder, tmp_path / "out", "--device", device) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --device {device}") and message in err and err.count("\n") == 1


def test_a_foreign_dataset_folder_is_not_replaced(clip_folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text("{}\n")
    assert _track(clip_folder, out) == 2
    assert "not made by 'track --clips'" in capsys.readouterr().err
    assert (out / "manifest.jsonl").read_text() == "{}\n"
    assert main(["track", "--merge", "--out", str(tmp_path / "none")]) == 2
    assert "no shard manifests" in capsys.readouterr().err


def test_face_model_and_parameters_move_to_a_device():
    """``--device``: the tracker fits on the face model's device; every tensor of the model and of the
    parameters moves (the meta device stands in for a GPU here)."""
    model = load_face_model("procedural")
    moved = model.to("meta")
    names = [f.name for f in fields(model) if torch.is_tensor(getattr(model, f.name))]
    assert len(names) >= 11 and all(getattr(moved, n).device.type == "meta" for n in names)
    assert model.neutral.device.type == "cpu" and moved.name == model.name
    params = TrackParams.initial(model, 3, 500.0).to("meta")
    assert all(t.device.type == "meta" for t in params.tensors().values())


def test_the_fit_makes_every_tensor_on_the_model_device(synthetic_video):
    """A GPU run needs every tensor of the fit on the face model's device. Without a GPU: the default device is
    ``meta`` here, so a tensor made without naming the model's device (CPU) lands on ``meta`` and the first op
    that mixes it with the model's tensors fails; the whole fit (both landmark stages, the photometric stage,
    the final rendering) must run through."""
    model = load_face_model("procedural")
    clip = load_synthetic_clip(synthetic_video, model, noise_px=1.0)
    config = TrackerConfig(rigid_steps=2, shape_steps=2, photometric_steps=(1, 1, 1), photometric_size=48)
    with torch.device("meta"):
        result = track_clip(model, clip.frames[:2], clip.landmarks[:2], config)
    assert result.depth.shape == (2, 96, 96) and result.params.identity.device.type == "cpu"
    assert len(result.photometric_error) == 3
