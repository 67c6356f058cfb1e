"""Synthetic studio data: determinism, geometry consistent with the stored parameters, masks, clips, lighting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jointportrait.data.manifest import read_manifest
from jointportrait.data.synth import (
    PITCH_RANGE,
    ROLL_RANGE,
    YAW_RANGE,
    SynthConfig,
    rotation_matrix,
    write_dataset,
)
from jointportrait.face_models import load_face_model


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    model = load_face_model("procedural")
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_dataset(tmp_path / name, model, SynthConfig(subjects=2, frames_per_subject=1, size=16, seed=seed))
        runs[name] = _files(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"][Path("images/s0000_f0000.png")] != runs["c"][Path("images/s0000_f0000.png")]


def test_records_masks_and_parameters(still_dataset):
    records = read_manifest(still_dataset)
    assert len(records) == 6 and {r.subject for r in records} == {"s0000", "s0001", "s0002"}
    config = json.loads((still_dataset / "synth_config.json").read_text())
    assert config["face_model"] == "procedural-head"
    for r in records:
        depth = np.load(r.depth)
        mask = np.asarray(Image.open(r.mask)) == 255
        skin = np.asarray(Image.open(r.skin_mask)) == 255
        assert mask.any() and not mask.all()
        assert ((depth > 0) == mask).all()
        assert skin.any() and not (skin & ~mask).any()
        normals = np.asarray(Image.open(still_dataset / r.extra["normals"]),
                             dtype=np.float64) / 127.5 - 1.0
        np.testing.assert_allclose(np.linalg.norm(normals[mask], axis=-1), 1.0, atol=0.02)
        params = json.loads((still_dataset / r.extra["params"]).read_text())
        yaw, pitch, roll = params["rotation_yaw_pitch_roll_deg"]
        assert abs(yaw) <= YAW_RANGE and abs(pitch) <= PITCH_RANGE and abs(roll) <= ROLL_RANGE
        assert np.allclose(params["intrinsics"], r.intrinsics)


def test_depth_matches_ray_casting_the_stored_parameters(still_dataset):
    """Rebuild the mesh from params/*.json alone and ray cast it with trimesh + embree."""
    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("embreex")
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    model = load_face_model("procedural")
    record = read_manifest(still_dataset)[3]
    p = json.loads((still_dataset / record.extra["params"]).read_text())
    weights = np.array([p["blendshapes"][n] for n in model.blendshape_names])
    verts = (model.neutral.double().numpy() + np.einsum("k,kvc->vc", p["identity"], model.identity_basis.double())
             + np.einsum("k,kvc->vc", weights, model.blendshapes.double()))
    world = verts @ np.array(p["rotation_matrix"]).T + p["translation_cm"]
    w2c = np.array(p["world_to_camera"])
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    K = np.array(p["intrinsics"])
    size = 32
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    dirs = np.stack([(jj - K[0, 2]) / K[0, 0], (ii - K[1, 2]) / K[1, 1], np.ones(jj.shape)], -1).reshape(-1, 3)
    mesh = trimesh.Trimesh(cam, model.triangles.numpy(), process=False)
    loc, ray_idx, _ = RayMeshIntersector(mesh).intersects_location(np.zeros_like(dirs), dirs, multiple_hits=False)
    ref = np.zeros(size * size)
    ref[ray_idx] = loc[:, 2]
    # the stored 2-D landmarks are the projections of the landmark vertices
    lm = cam[model.landmark_indices.numpy()]
    np.testing.assert_allclose(p["landmarks_2d"], (lm @ K.T)[:, :2] / lm[:, 2:], atol=1e-3)
    ours = np.load(record.depth).reshape(-1)
    both = (ref > 0) & (ours > 0)
    assert both.sum() > 50
    np.testing.assert_allclose(ours[both], ref[both], rtol=1e-4)


def test_video_clips_are_smooth_and_numbered(video_dataset):
    records = read_manifest(video_dataset)
    clips = sorted({r.clip for r in records})
    assert clips == ["s0000_c00", "s0001_c00"]
    frames = sorted((r for r in records if r.clip == "s0000_c00"), key=lambda r: r.frame)
    assert [r.frame for r in frames] == list(range(8))
    poses = np.array([json.loads((video_dataset / r.extra["params"]).read_text())["rotation_yaw_pitch_roll_deg"]
                      for r in frames])
    steps = np.abs(np.diff(poses, axis=0))
    assert steps.max() < 8.0  # degrees per frame at 25 fps: smooth, no jumps
    assert np.abs(np.diff(steps, axis=0)).max() < 3.0  # and no kinks
    times = [json.loads((video_dataset / r.extra["params"]).read_text())["time_s"] for r in frames]
    np.testing.assert_allclose(np.diff(times), 1 / 25)


def test_rotation_convention():
    r = rotation_matrix(90.0, 0.0, 0.0)
    np.testing.assert_allclose(r @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # yaw turns the face to +x
    r = rotation_matrix(0.0, 90.0, 0.0)
    np.testing.assert_allclose(r @ [0, 0, 1], [0, -1, 0], atol=1e-12)  # rotation about +x: z -> -y
