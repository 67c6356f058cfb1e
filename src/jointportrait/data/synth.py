"""Synthetic studio data: rendered faces with exact depth (paper Sec. 5.1, supplementary 7.3).

The paper trains on studio captures whose depth is rendered from registered
meshes. Here the meshes come from a morphable face model
(:mod:`jointportrait.face_models`): per subject a random identity and
albedo (skin tone with variation, darker brows and lips, iris colour, hair on
the back of the head), per frame a random expression (a few ARKit
blendshapes), head pose (yaw +-45, pitch +-20, roll +-10 degrees),
spherical-harmonics lighting and background, seen by a perspective portrait
camera. Each frame gives RGB (rendered at 2x and box-filtered), camera-space
depth, the coverage mask, the skin mask (face skin without eyes and mouth
interior, the paper's evaluation region) and normals, plus its parameters.
With ``video=True`` a subject's frames form clips with smooth expression and
pose trajectories at 25 fps.

Everything random comes from ``numpy.random.default_rng([seed, subject, ...])``,
so the same seed gives the same bytes. Frame layout on disk: see
:func:`write_dataset` and docs/DATA.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jointportrait.appearance.color import linear_to_srgb, srgb_to_linear
from jointportrait.appearance.sh_lighting import irradiance, random_studio_lighting
from jointportrait.data.manifest import FrameRecord, write_manifest
from jointportrait.face_models import FaceModel
from jointportrait.faces.crop import FaceCrop
from jointportrait.geometry.cameras import (
    MODEL_TO_OPENCV,
    PerspectiveCamera,
    focal_from_fov,
    intrinsics_from_fov,
    world_to_camera_matrix,
)
from jointportrait.render import interpolate, rasterize

logger = logging.getLogger(__name__)

FPS = 25
SUPERSAMPLE = 2
YAW_RANGE, PITCH_RANGE, ROLL_RANGE = 45.0, 20.0, 10.0  # degrees
SKIN_LIGHT = np.array([0.94, 0.80, 0.70])  # sRGB end points of the skin-tone range
SKIN_DARK = np.array([0.36, 0.22, 0.15])
IRIS_COLORS = np.array([[0.30, 0.18, 0.10], [0.18, 0.10, 0.06], [0.30, 0.45, 0.60], [0.35, 0.45, 0.30],
                        [0.45, 0.45, 0.45]])
HAIR_COLORS = np.array([[0.05, 0.04, 0.03], [0.20, 0.12, 0.06], [0.45, 0.30, 0.15], [0.75, 0.62, 0.40],
                        [0.55, 0.55, 0.55]])
# blendshape groups for sampling expressions: families chosen together, left and right mostly together
EXPRESSION_GROUPS = {
    "smile": ["mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R"],
    "open": ["jawOpen", "mouthLowerDown_L", "mouthLowerDown_R"],
    "surprise": ["jawOpen", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R", "eyeWide_L",
                 "eyeWide_R"],
    "frown": ["browDown_L", "browDown_R", "mouthFrown_L", "mouthFrown_R"],
    "blink": ["eyeBlink_L", "eyeBlink_R"],
    "pucker": ["mouthPucker", "mouthFunnel"],
    "sneer": ["noseSneer_L", "noseSneer_R", "mouthUpperUp_L", "mouthUpperUp_R"],
    "stretch": ["mouthStretch_L", "mouthStretch_R", "mouthPress_L", "mouthPress_R"],
}


@dataclass
class SynthConfig:
    """What to generate. ``frames_per_subject`` frames per subject; with ``video`` they form clips of
    ``clip_length`` frames (the last clip of a subject may be shorter)."""

    subjects: int = 8
    frames_per_subject: int = 6
    size: int = 512
    video: bool = False
    clip_length: int = 18
    seed: int = 0
    val_fraction: float = 0.125
    test_fraction: float = 0.125
    fov_degrees: tuple[float, float] = (18.0, 30.0)
    face_crop: bool = False  # frame each image as the face crop rule does (jointportrait.faces.crop)
    face_margin: float = 1.0


@dataclass
class SubjectParams:
    identity: np.ndarray  # (50,) ~N(0, 1)
    skin: np.ndarray  # (3,) sRGB
    brow: np.ndarray
    lips: np.ndarray
    iris: np.ndarray
    hair: np.ndarray
    blotches: np.ndarray  # (K, 4): unit direction + amplitude of low-frequency skin tone variation


@dataclass
class FrameParams:
    blendshapes: np.ndarray  # (53,) in [0, 1]
    rotation_deg: np.ndarray  # (3,) yaw, pitch, roll
    translation: np.ndarray  # (3,) cm, model frame
    lighting: np.ndarray  # (9, 3) SH, camera frame
    background: np.ndarray  # (3, 3): top colour, bottom colour, (noise amplitude, noise seed, 0)
    fov_degrees: float


def _linear_colors(srgb: np.ndarray) -> torch.Tensor:
    """sRGB colours (array, clipped to [0, 1]) -> linear RGB float32 tensor (computed in float64)."""
    return srgb_to_linear(torch.from_numpy(np.clip(np.asarray(srgb, dtype=np.float64), 0.0, 1.0))).float()


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head rotation in the model frame (+y up, +z to the viewer): ``R = R_y(yaw) R_x(pitch) R_z(roll)``.

    Positive yaw turns the face towards the subject's left (+x), positive pitch tilts it up.
    """
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def sample_subject(rng: np.random.Generator) -> SubjectParams:
    tone = rng.uniform(0.0, 1.0)
    skin = (1 - tone) * SKIN_LIGHT + tone * SKIN_DARK
    skin = np.clip(skin * (1 + rng.uniform(-0.06, 0.06, size=3)), 0, 1)
    hair = HAIR_COLORS[rng.integers(len(HAIR_COLORS))] * rng.uniform(0.8, 1.2)
    directions = rng.normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return SubjectParams(
        identity=rng.normal(size=50),
        skin=skin,
        brow=np.clip(np.minimum(hair, skin * 0.45) * rng.uniform(0.8, 1.1), 0, 1),
        lips=np.clip(skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.85, 1.0), 0, 1),
        iris=IRIS_COLORS[rng.integers(len(IRIS_COLORS))] * rng.uniform(0.8, 1.2),
        hair=np.clip(hair, 0, 1),
        blotches=np.concatenate([directions, rng.uniform(-0.08, 0.08, size=(6, 1))], axis=1),
    )


def sample_expression(rng: np.random.Generator, names: list[str]) -> np.ndarray:
    """Blendshape weights (53,): 0-2 expression groups plus sparse small activations."""
    weights = np.zeros(len(names))
    index = {n: i for i, n in enumerate(names)}
    groups = list(EXPRESSION_GROUPS)
    for g in rng.choice(len(groups), size=rng.integers(0, 3), replace=False):
        strength = rng.uniform(0.3, 1.0)
        for name in EXPRESSION_GROUPS[groups[g]]:
            if name in index:
                weights[index[name]] = np.clip(strength * rng.uniform(0.7, 1.0), 0, 1)
    extra = rng.choice(len(names), size=3, replace=False)
    weights[extra] = np.maximum(weights[extra], rng.uniform(0.0, 0.3, size=3))
    return weights


def sample_pose(rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.uniform(-YAW_RANGE, YAW_RANGE), rng.uniform(-PITCH_RANGE, PITCH_RANGE),
                     rng.uniform(-ROLL_RANGE, ROLL_RANGE)])


def sample_frame(rng: np.random.Generator, names: list[str], config: SynthConfig) -> FrameParams:
    top = rng.uniform(0.1, 0.9, size=3)
    return FrameParams(
        blendshapes=sample_expression(rng, names),
        rotation_deg=sample_pose(rng),
        translation=np.array([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(-3, 3)]),
        lighting=random_studio_lighting(rng),
        background=np.stack([top, np.clip(top * rng.uniform(0.5, 1.2, size=3), 0, 1),
                             np.array([rng.uniform(0, 0.08), rng.integers(0, 2**31), 0.0])]),
        fov_degrees=float(rng.uniform(*config.fov_degrees)),
    )


def _smooth_track(rng: np.random.Generator, length: int, sample: Callable[[], np.ndarray],
                  step: int) -> np.ndarray:
    """Keyframes every ``step`` frames joined by cubic Catmull-Rom splines: (length, D), C1-smooth."""
    n_keys = length // step + 4
    keys = np.stack([sample() for _ in range(n_keys)])  # (K, D)
    out = []
    for t in range(length):
        i, s = divmod(t / step, 1.0)
        p0, p1, p2, p3 = keys[int(i)], keys[int(i) + 1], keys[int(i) + 2], keys[int(i) + 3]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * s**3))
    return np.stack(out)


def sample_clip(rng: np.random.Generator, names: list[str], config: SynthConfig, length: int) -> list[FrameParams]:
    """A clip: lighting, background, camera fixed; expression and pose follow smooth keyframed tracks
    (a key every 0.4-0.8 s at 25 fps)."""
    base = sample_frame(rng, names, config)
    centre = sample_pose(rng) * 0.6
    step = int(rng.integers(10, 21))
    poses = _smooth_track(rng, length, lambda: centre + sample_pose(rng) * 0.4, step)
    poses = np.clip(poses, [-YAW_RANGE, -PITCH_RANGE, -ROLL_RANGE], [YAW_RANGE, PITCH_RANGE, ROLL_RANGE])
    expressions = np.clip(_smooth_track(rng, length, lambda: sample_expression(rng, names), step), 0.0, 1.0)
    shift = _smooth_track(rng, length, lambda: rng.uniform(-0.8, 0.8, size=3), step)
    return [FrameParams(blendshapes=expressions[t], rotation_deg=poses[t], translation=base.translation + shift[t],
                        lighting=base.lighting, background=base.background, fov_degrees=base.fov_degrees)
            for t in range(length)]


class VertexColors:
    """Per-vertex linear albedo of a subject and per-triangle overrides for the eyes (by material)."""

    def __init__(self, model: FaceModel, subject: SubjectParams, neutral: torch.Tensor) -> None:
        v = neutral.double().numpy()  # (V, 3) the subject's neutral shape
        region = model.vertex_region.numpy()
        lm = v[model.landmark_indices.numpy()]
        albedo = np.repeat(subject.skin[None], len(v), 0)
        # low-frequency tone variation over the head
        unit = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)
        for blob in subject.blotches:
            albedo *= 1.0 + blob[3] * np.exp(-np.sum((unit - blob[:3]) ** 2, axis=1) / 0.3)[:, None]
        front = v[:, 2] > lm[:, 2].min() - 3.0
        # brows: within ~0.7 cm of the brow landmark polyline (17-26), sampled densely
        brow_pts = np.concatenate([_polyline(lm[17:22]), _polyline(lm[22:27])])
        d_brow = _nearest_distance(v, brow_pts)
        w_brow = np.clip((0.75 - d_brow) / 0.3, 0, 1) * front * (region == 0)
        albedo = albedo * (1 - w_brow[:, None]) + subject.brow * w_brow[:, None]
        # lips: inside the ellipse spanned by the mouth landmarks (48-59)
        mouth = lm[48:60]
        centre = mouth.mean(0)
        half_w = 0.55 * np.linalg.norm(mouth[6] - mouth[0]) + 0.1
        half_h = 0.55 * abs(mouth[3, 1] - mouth[9, 1]) + 0.15
        e = ((v[:, 0] - centre[0]) / half_w) ** 2 + ((v[:, 1] - centre[1]) / half_h) ** 2
        w_lip = np.clip((1.0 - e) / 0.25, 0, 1) * (v[:, 2] > centre[2] - 2.0) * np.isin(region, (0, 2))
        albedo = albedo * (1 - w_lip[:, None]) + subject.lips * w_lip[:, None]
        # hair on the back and top of the head (head_neck region above the ears)
        w_hair = np.clip((v[:, 1] - (lm[0, 1] + 1.0)) / 2.0, 0, 1) * (region == 1)
        albedo = albedo * (1 - w_hair[:, None]) + subject.hair * w_hair[:, None]
        albedo[region == 2] = [0.35, 0.12, 0.12]  # mouth interior
        albedo[np.isin(region, (3, 4))] *= [0.92, 0.85, 0.85]  # eye sockets, slightly pinker
        albedo[np.isin(region, (5, 6))] = [0.85, 0.82, 0.78]  # sclera
        self.vertex = _linear_colors(albedo)  # (V, 3)
        names = model.material_names
        tri_color = torch.zeros(model.triangles.shape[0], 3)
        override = torch.zeros(model.triangles.shape[0], dtype=torch.bool)
        iris = _linear_colors(subject.iris)
        pupil = torch.tensor([0.01, 0.01, 0.012])
        centroids = neutral[model.triangles].mean(1)  # (F, 3)
        for iris_name, sclera_name, region in (("M_IrisLeft", "M_ScleraLeft", 5), ("M_IrisRight", "M_ScleraRight", 6)):
            if iris_name not in names or sclera_name not in names:
                continue
            # the sclera mesh is a closed ball that covers the iris (a transparent cornea in the original
            # model): paint its cap in front of the iris with the iris colour and a pupil
            is_iris = model.triangle_material == names.index(iris_name)
            eye = model.triangle_material == names.index(sclera_name)
            centre = neutral[model.vertex_region == region].mean(0)
            axis = torch.nn.functional.normalize(centroids[is_iris].mean(0) - centre, dim=0)
            cos = torch.nn.functional.normalize(centroids - centre, dim=-1) @ axis  # (F,)
            cap = float(cos[is_iris].min())
            pupil_cap = 1.0 - 0.35 * (1.0 - cap)
            sel = (eye | is_iris) & (cos >= cap)
            tri_color[sel] = torch.where((cos[sel] >= pupil_cap)[:, None], pupil, iris)
            override[sel] = True
        self.triangle = tri_color  # (F, 3)
        self.triangle_override = override  # (F,)


def _polyline(points: np.ndarray, per_segment: int = 8) -> np.ndarray:
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None, None]
    segs = points[:-1][None] * (1 - t) + points[1:][None] * t  # (S, N-1, 3)
    return np.concatenate([segs.reshape(-1, 3), points[-1:]])


def _nearest_distance(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    d = np.full(len(points), np.inf)
    for t in targets:
        d = np.minimum(d, np.linalg.norm(points - t, axis=1))
    return d


def camera_for(size: int, fov_degrees: float, head_height_cm: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics (3, 3) and world-to-camera (4, 4) of a portrait camera on the model's +z axis.

    The world frame is the model frame (+y up, +z to the viewer); the camera
    looks down -z with OpenCV axes and stands far enough that ``head_height_cm``
    fills 90 % of the image height. Pixel centres at integer coordinates, so
    the principal point is ``(size - 1) / 2``.
    """
    distance = focal_from_fov(size, fov_degrees) * head_height_cm / (0.9 * size)
    centre = np.array([0.0, -2.0, distance])  # camera position in the model frame, aimed slightly low
    return intrinsics_from_fov(size, size, fov_degrees), world_to_camera_matrix(MODEL_TO_OPENCV.double().numpy(), centre)


def _background(params: np.ndarray, size: int) -> torch.Tensor:
    """A vertical gradient with low-frequency noise, (H, W, 3) linear RGB."""
    top, bottom, extra = params
    rng = np.random.default_rng(int(extra[1]))
    t = np.linspace(0, 1, size)[:, None, None]
    img = top * (1 - t) + bottom * t
    noise = rng.normal(size=(4, 4, 3))
    noise = np.asarray(Image.fromarray(((np.tanh(noise) + 1) * 127.5).astype(np.uint8)).resize(
        (size, size), Image.BICUBIC), dtype=np.float64) / 127.5 - 1.0
    return _linear_colors(img + extra[0] * noise)


@dataclass
class RenderedFrame:
    rgb: np.ndarray  # (S, S, 3) uint8 sRGB
    depth: np.ndarray  # (S, S) float32 camera-space z in cm, 0 outside mask
    mask: np.ndarray  # (S, S) bool coverage
    skin: np.ndarray  # (S, S) bool
    normals: np.ndarray  # (S, S, 3) float32 camera-space unit normals (OpenCV axes), 0 outside
    K: np.ndarray
    world_to_camera: np.ndarray
    landmarks: np.ndarray  # (68, 3): pixel u, v and camera-space z of the 68 landmark vertices


def render_frame(model: FaceModel, identity_vertices: torch.Tensor, colors: VertexColors, frame: FrameParams,
                 size: int, face_crop_margin: float | None = None) -> RenderedFrame:
    """Render one frame at ``size`` (RGB supersampled ``SUPERSAMPLE`` x).

    With ``face_crop_margin`` the frame is the face crop (:mod:`jointportrait.faces.crop`, that margin) of
    the portrait camera's view, rendered directly through the crop's intrinsics (no resampling).
    """
    weights = torch.from_numpy(frame.blendshapes).float()[None]
    verts = identity_vertices + torch.einsum("bj,jvc->bvc", weights, model.blendshapes)  # (1, V, 3) model frame
    rot = torch.from_numpy(rotation_matrix(*frame.rotation_deg)).float()
    world = verts @ rot.T + torch.from_numpy(frame.translation).float()  # (1, V, 3)
    K, w2c = camera_for(size, frame.fov_degrees)
    camera = PerspectiveCamera(torch.from_numpy(K).float()[None], torch.from_numpy(w2c).float()[None])
    cam_verts = camera.world_to_view(world)  # (1, V, 3)
    lm = model.landmarks(cam_verts)  # (1, 68, 3)
    if face_crop_margin is not None:
        crop = FaceCrop.from_landmarks(camera.project(lm)[0].numpy(), size, size, size=size, margin=face_crop_margin)
        K = crop.intrinsics(K)
        camera = PerspectiveCamera(torch.from_numpy(K).float()[None], torch.from_numpy(w2c).float()[None])
    frags = rasterize(cam_verts, model.triangles, camera, size, size)

    big = size * SUPERSAMPLE
    if face_crop_margin is None:
        cam_big = PerspectiveCamera(torch.from_numpy(intrinsics_from_fov(big, big, frame.fov_degrees)).float()[None])
    else:  # the crop's camera at twice the resolution, pixel centres on integers at both
        K_big = K.copy()
        K_big[:2] *= SUPERSAMPLE
        K_big[:2, 2] = (K[:2, 2] + 0.5) * SUPERSAMPLE - 0.5
        cam_big = PerspectiveCamera(torch.from_numpy(K_big).float()[None])
    fb = rasterize(cam_verts, model.triangles, cam_big, big, big)
    albedo = interpolate(colors.vertex[None], fb)[0]  # (2S, 2S, 3)
    tid = fb.triangle_id[0].clamp_min(0)
    albedo = torch.where(colors.triangle_override[tid][..., None] & fb.mask[0][..., None], colors.triangle[tid],
                         albedo)
    shading = irradiance(fb.normals[0], torch.from_numpy(frame.lighting).float())  # (2S, 2S, 3)
    color = albedo * shading.clamp_min(0.0)
    color = torch.where(fb.mask[0][..., None], color, _background(frame.background, big))
    srgb = linear_to_srgb(color)
    srgb = srgb.view(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(dim=(1, 3))  # box filter
    rgb = (srgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()

    mask = frags.mask[0]
    skin = mask & model.skin_triangle_mask[frags.triangle_id[0].clamp_min(0)]
    return RenderedFrame(
        rgb=rgb,
        depth=frags.depth[0].numpy().astype(np.float32),
        mask=mask.numpy(),
        skin=skin.numpy(),
        normals=frags.normals[0].numpy().astype(np.float32),
        K=K,
        world_to_camera=w2c,
        landmarks=torch.cat([camera.project(lm), lm[..., 2:]], -1)[0].numpy(),
    )


def split_of(subject_index: int, config: SynthConfig) -> str:
    """Subjects are split by index: the last ones are test, the ones before them val, the rest train."""
    n_test = int(round(config.subjects * config.test_fraction))
    n_val = int(round(config.subjects * config.val_fraction))
    if subject_index >= config.subjects - n_test:
        return "test"
    if subject_index >= config.subjects - n_test - n_val:
        return "val"
    return "train"


def _to_json(value):
    if isinstance(value, np.ndarray):
        return np.round(value.astype(np.float64), 6).tolist()
    if isinstance(value, float | np.floating):
        return round(float(value), 6)
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, optimize=False)


def frame_params(record: FrameRecord) -> dict:
    """The parameters a frame of :func:`write_dataset` was rendered with (its ``params/<id>.json``)."""
    return json.loads((record.manifest.parent / record.extra["params"]).read_text())


def write_dataset(out: Path, model: FaceModel, config: SynthConfig,
                  progress: Callable[[int], None] | None = None) -> int:
    """Render the dataset into ``out`` (must be empty or new) and write ``manifest.jsonl``; returns frames.

    Layout: ``images/<id>.png`` (sRGB), ``depth/<id>.npy`` (float32 camera z, cm,
    0 outside the mask), ``mask/<id>.png`` (255 = covered), ``skin/<id>.png``,
    ``normals/<id>.png`` (camera-space OpenCV normals as ``(n + 1) / 2 * 255``,
    0 outside), ``params/<id>.json``; ``<id>`` is ``s0003_f0002`` or
    ``s0003_c01_f0007`` for clips.
    """
    for sub in ("images", "depth", "mask", "skin", "normals", "params"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    records = []
    for s in range(config.subjects):
        rng = np.random.default_rng([config.seed, s])
        subject = sample_subject(rng)
        identity = torch.from_numpy(subject.identity).float()[None]
        id_verts = model.vertices(identity=identity)  # (1, V, 3)
        colors = VertexColors(model, subject, id_verts[0])
        if config.video:
            clips, remaining = [], config.frames_per_subject
            while remaining > 0:
                length = min(config.clip_length, remaining)
                clips.append(sample_clip(np.random.default_rng([config.seed, s, len(clips), 1]),
                                         model.blendshape_names, config, length))
                remaining -= length
        else:
            frng = np.random.default_rng([config.seed, s, 0, 0])
            clips = [[sample_frame(frng, model.blendshape_names, config) for _ in range(config.frames_per_subject)]]
        subject_id = f"s{s:04d}"
        for c, frames in enumerate(clips):
            clip_id = f"{subject_id}_c{c:02d}" if config.video else None
            for f, frame in enumerate(frames):
                stem = f"{clip_id}_f{f:04d}" if config.video else f"{subject_id}_f{f:04d}"
                r = render_frame(model, id_verts, colors, frame, config.size,
                                 face_crop_margin=config.face_margin if config.face_crop else None)
                _save_png(out / "images" / f"{stem}.png", r.rgb)
                np.save(out / "depth" / f"{stem}.npy", np.where(r.mask, r.depth, 0).astype(np.float32))
                _save_png(out / "mask" / f"{stem}.png", r.mask.astype(np.uint8) * 255)
                _save_png(out / "skin" / f"{stem}.png", r.skin.astype(np.uint8) * 255)
                normals8 = np.where(r.mask[..., None], (r.normals + 1) * 127.5 + 0.5, 0).clip(0, 255)
                _save_png(out / "normals" / f"{stem}.png", normals8.astype(np.uint8))
                params = {
                    "face_model": model.name,
                    "identity": subject.identity,
                    "blendshapes": dict(zip(model.blendshape_names, _to_json(frame.blendshapes), strict=True)),
                    "expression_pca": model.project_blendshapes(
                        torch.from_numpy(frame.blendshapes)[None])[0].numpy(),
                    "rotation_yaw_pitch_roll_deg": frame.rotation_deg,
                    "rotation_matrix": rotation_matrix(*frame.rotation_deg),
                    "translation_cm": frame.translation,
                    "intrinsics": r.K,
                    "landmarks_2d": r.landmarks[:, :2],
                    "landmarks_depth": r.landmarks[:, 2],
                    "world_to_camera": r.world_to_camera,
                    "sh_lighting": frame.lighting,
                    "albedo": {k: v for k, v in asdict(subject).items() if k not in ("identity", "blotches")},
                    "time_s": f / FPS if config.video else None,
                }
                (out / "params" / f"{stem}.json").write_text(json.dumps(_to_json(params), sort_keys=True) + "\n")
                records.append({
                    "image": f"images/{stem}.png",
                    "depth": f"depth/{stem}.npy",
                    "mask": f"mask/{stem}.png",
                    "skin_mask": f"skin/{stem}.png",
                    "normals": f"normals/{stem}.png",
                    "params": f"params/{stem}.json",
                    "subject": subject_id,
                    "clip": clip_id,
                    "frame": f,
                    "split": split_of(s, config),
                    "source": "studio",
                    "intrinsics": _to_json(r.K),
                    "depth_scale": 1.0,
                    "depth_unit": "cm",
                })
                if progress is not None:
                    progress(1)
    write_manifest(out / "manifest.jsonl", records)
    config_record = {**asdict(config), "face_model": model.name, "face_model_source": model.source}
    (out / "synth_config.json").write_text(json.dumps(_to_json(config_record), sort_keys=True, indent=1) + "\n")
    return len(records)
