"""The project's own procedural head model, ``--face-model procedural`` (DESIGN.md, "Face model").

Same interface as the ICT-FaceKit model (:class:`~jointportrait.face_models.model.FaceModel`):
an ellipsoidal head (an icosphere) shaped by Gaussian features (nose, brow
ridge, eye sockets, cheeks, lips, chin), two eyeballs with iris caps, the same
seven regions and material names, 68 landmarks placed on the front of the
head, 50 smooth identity modes (three global scales, then random Gaussian
bumps along the normal) and the 53 ARKit blendshape names, each a localised
displacement. It is deterministic (no randomness outside a fixed seed) and
coarse: good for tests and demos, not a substitute for a scanned model.
Units and axes as the ICT model: centimetres, +y up, +z towards the viewer.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from jointportrait.face_models.model import (
    NUM_IDENTITY,
    REGION_NAMES,
    FaceModel,
    expression_pca,
    skin_masks,
)

MATERIAL_NAMES = ["M_BackHead", "M_EyeBlend", "M_EyeLashes", "M_EyeOcclusion", "M_Face", "M_GumsTongue",
                  "M_IrisLeft", "M_IrisRight", "M_LacrimalFluid", "M_ScleraLeft", "M_ScleraRight", "M_Teeth"]
BLENDSHAPE_NAMES = [
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R", "cheekPuff_L",
    "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R",
    "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L",
    "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
]
RADII = np.array([7.8, 10.5, 9.0])  # head half-axes x, y, z (cm)
EYE_X, EYE_Y, EYE_RADIUS = 3.1, 1.8, 1.15
# Face features: (centre x, centre y, sigma x, sigma y, height along the normal), cm.
FEATURES = [
    (0.0, -0.6, 1.1, 1.9, 2.2),  # nose
    (0.0, -2.6, 0.9, 0.5, 0.9),  # nose tip
    (0.0, 3.4, 3.8, 0.9, 0.6),  # brow ridge
    (EYE_X, EYE_Y, 1.4, 1.0, -0.9),  # eye sockets
    (-EYE_X, EYE_Y, 1.4, 1.0, -0.9),
    (3.8, -1.8, 1.6, 1.6, 0.5),  # cheeks
    (-3.8, -1.8, 1.6, 1.6, 0.5),
    (0.0, -5.2, 1.8, 0.5, 0.6),  # lips
    (0.0, -8.3, 2.0, 1.0, 0.7),  # chin
]
# blendshape family -> (centre x, y, sigma, displacement (dx, dy, dz)) for the subject's left side (x > 0).
BLEND_RULES = {
    "browDown": (2.8, 3.6, 1.3, (0.0, -0.5, 0.0)),
    "browInnerUp": (1.4, 3.6, 1.0, (0.0, 0.6, 0.0)),
    "browOuterUp": (3.8, 3.5, 1.0, (0.0, 0.6, 0.0)),
    "cheekPuff": (3.6, -3.0, 1.6, (0.5, 0.0, 0.6)),
    "cheekSquint": (3.4, -0.5, 1.1, (0.0, 0.4, 0.1)),
    "eyeBlink": (EYE_X, EYE_Y + 0.6, 0.7, (0.0, -0.9, 0.1)),
    "eyeSquint": (EYE_X, EYE_Y - 0.7, 0.7, (0.0, 0.4, 0.0)),
    "eyeWide": (EYE_X, EYE_Y + 0.7, 0.7, (0.0, 0.4, 0.0)),
    "mouthDimple": (2.4, -5.2, 0.7, (0.2, 0.0, -0.3)),
    "mouthFrown": (2.2, -5.6, 0.8, (0.0, -0.6, 0.0)),
    "mouthLowerDown": (1.0, -5.8, 0.8, (0.0, -0.6, 0.0)),
    "mouthPress": (1.0, -5.2, 0.8, (0.0, 0.0, -0.3)),
    "mouthSmile": (2.3, -5.0, 1.0, (0.5, 0.7, -0.2)),
    "mouthStretch": (2.3, -5.3, 1.0, (0.6, -0.2, 0.0)),
    "mouthUpperUp": (1.0, -4.6, 0.8, (0.0, 0.5, 0.0)),
    "noseSneer": (1.0, -1.0, 0.8, (0.0, 0.4, 0.1)),
}
CENTRE_RULES = {
    "jawForward": (0.0, -7.5, 3.0, (0.0, 0.0, 0.8)),
    "jawLeft": (0.0, -7.5, 3.0, (0.8, 0.0, 0.0)),
    "jawRight": (0.0, -7.5, 3.0, (-0.8, 0.0, 0.0)),
    "jawOpen": (0.0, -7.5, 3.0, (0.0, -1.8, -0.6)),
    "mouthClose": (0.0, -5.6, 1.0, (0.0, 0.4, 0.0)),
    "mouthFunnel": (0.0, -5.2, 1.2, (0.0, 0.0, 0.6)),
    "mouthLeft": (0.0, -5.2, 1.5, (0.7, 0.0, 0.0)),
    "mouthRight": (0.0, -5.2, 1.5, (-0.7, 0.0, 0.0)),
    "mouthPucker": (0.0, -5.2, 1.0, (0.0, 0.0, 0.7)),
    "mouthRollLower": (0.0, -5.7, 0.7, (0.0, 0.2, -0.3)),
    "mouthRollUpper": (0.0, -4.8, 0.7, (0.0, -0.2, -0.3)),
    "mouthShrugLower": (0.0, -5.9, 0.9, (0.0, 0.4, 0.1)),
    "mouthShrugUpper": (0.0, -4.6, 0.9, (0.0, 0.3, 0.1)),
}
EYE_LOOK = {"eyeLookDown": (0.0, -0.25), "eyeLookUp": (0.0, 0.25), "eyeLookIn": (-0.25, 0.0),
            "eyeLookOut": (0.25, 0.0)}


def _gauss(xy: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((xy[:, 0] - cx) / sx) ** 2 + ((xy[:, 1] - cy) / sy) ** 2))


def _landmark_template() -> np.ndarray:
    """68 Multi-PIE landmark positions (x, y) in cm on the front of the head, subject's right first."""
    t = np.linspace(0.0, 1.0, 17)  # jaw line from the right ear (x < 0) under the chin to the left ear
    jaw = np.stack([np.linspace(-6.6, 6.6, 17) * np.sqrt(1.0 - 0.35 * np.sin(np.pi * t) ** 2),
                    1.0 - 9.2 * np.sin(np.pi * t) ** 0.8], 1)
    brow_r = np.stack([np.linspace(-5.0, -1.2, 5), 3.7 + 0.4 * np.sin(np.linspace(0, np.pi, 5))], 1)
    brow_l = brow_r[::-1] * [-1, 1]
    nose = np.concatenate([np.stack([np.zeros(4), np.linspace(1.8, -1.8, 4)], 1),
                           np.stack([np.linspace(-1.2, 1.2, 5), -2.8 + 0.3 * np.abs(np.linspace(-2, 2, 5)) / 2], 1)])
    ring = np.array([[-1, 0], [-0.45, 0.4], [0.45, 0.4], [1, 0], [0.45, -0.35], [-0.45, -0.35]]) * [1.1, 1.0]
    eye_r, eye_l = ring + [-EYE_X, EYE_Y], ring + [EYE_X, EYE_Y]
    outer = np.array([[-2.3, 0], [-1.5, 0.45], [-0.6, 0.7], [0, 0.6], [0.6, 0.7], [1.5, 0.45], [2.3, 0],
                      [1.5, -0.6], [0.7, -0.9], [0, -0.95], [-0.7, -0.9], [-1.5, -0.6]]) + [0, -5.2]
    inner = np.array([[-1.9, 0], [-0.7, 0.25], [0, 0.2], [0.7, 0.25], [1.9, 0], [0.7, -0.25], [0, -0.3],
                      [-0.7, -0.25]]) + [0, -5.2]
    return np.concatenate([jaw, brow_r, brow_l, nose, eye_r, eye_l, outer, inner]).astype(np.float64)


def _identity_fields(rng: np.random.Generator, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """50 smooth identity displacement fields (50, N, 3): three global scales, then random normal bumps."""
    modes = np.zeros((NUM_IDENTITY, len(points), 3))
    for axis in range(3):
        modes[axis, :, axis] = points[:, axis] * 0.05  # +-5 % per unit coefficient
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    for k in range(3, NUM_IDENTITY):
        amp = 0.6 / np.sqrt(k - 1)
        field = np.zeros(len(points))
        for _ in range(3):
            centre = rng.normal(size=3)
            centre[2] = abs(centre[2]) + 0.3  # mostly on the face side
            centre /= np.linalg.norm(centre)
            width = rng.uniform(0.25, 0.6)
            field += rng.choice([-1.0, 1.0]) * np.exp(-np.sum((unit - centre) ** 2, axis=1) / (2 * width**2))
        modes[k] = amp * field[:, None] * normals
    return modes


def _blendshape(name: str, xy: np.ndarray, front: np.ndarray, eye_sel: dict[str, np.ndarray]) -> np.ndarray:
    delta = np.zeros((len(xy), 3))
    family, _, side = name.partition("_")
    sign = {"L": 1.0, "R": -1.0, "": 1.0}[side]
    if family in EYE_LOOK:
        dx, dy = EYE_LOOK[family]
        dx *= sign  # "in" is towards the nose: -x for the left eye, +x for the right one
        delta[eye_sel[side], 0] = dx
        delta[eye_sel[side], 1] = dy
        return delta
    if family in BLEND_RULES:
        cx, cy, sigma, d = BLEND_RULES[family]
        cx *= sign
        d = (d[0] * sign, d[1], d[2])
    else:
        cx, cy, sigma, d = CENTRE_RULES[name]
    weight = _gauss(xy, cx, cy, sigma, sigma) * front
    if name == "jawOpen":  # everything below the mouth moves with the jaw
        weight = np.clip((-4.8 - xy[:, 1]) / 1.5, 0.0, 1.0) * front
    return weight[:, None] * np.asarray(d)[None, :]


def build_procedural_head(subdivisions: int = 5, seed: int = 0) -> FaceModel:
    """The procedural head (about 10k head + 2x642 eyeball vertices at ``subdivisions=5``)."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    unit = np.asarray(sphere.vertices, dtype=np.float64)
    head = unit * RADII
    xy = head[:, :2]
    front = np.clip(unit[:, 2] * 2.0, 0.0, 1.0)  # 1 on the face side, fading to 0 at the ears
    normals = unit / RADII**2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    relief = sum(h * _gauss(xy, cx, cy, sx, sy) for cx, cy, sx, sy, h in FEATURES) * front
    head = head + relief[:, None] * normals
    head_tris = np.asarray(sphere.faces, dtype=np.int64)

    eye = trimesh.creation.icosphere(subdivisions=3)
    eye_unit = np.asarray(eye.vertices)
    eye_parts, eye_tris, iris = [], [], []
    for x in (EYE_X, -EYE_X):
        surface_z = RADII[2] * np.sqrt(max(0.0, 1 - (x / RADII[0]) ** 2 - (EYE_Y / RADII[1]) ** 2))
        centre = np.array([x, EYE_Y, surface_z - 0.9 - 0.35 * EYE_RADIUS])
        eye_tris.append(np.asarray(eye.faces) + len(head) + sum(len(p) for p in eye_parts))
        eye_parts.append(centre + EYE_RADIUS * eye_unit)
        iris.append(eye_unit[np.asarray(eye.faces)].mean(1)[:, 2] > 0.8)
    vertices = np.concatenate([head, *eye_parts])
    triangles = np.concatenate([head_tris, *eye_tris])
    n_head, n_eye = len(head), len(eye_unit)

    region = np.where(unit[:, 2] > 0.05, 0, 1)
    mouth = _gauss(xy, 0.0, -5.2, 1.6, 0.35) > 0.5
    region[mouth & (unit[:, 2] > 0)] = 2
    for k, x in ((3, EYE_X), (4, -EYE_X)):
        region[(_gauss(xy, x, EYE_Y, 1.0, 0.65) > 0.6) & (unit[:, 2] > 0)] = k
    region = np.concatenate([region, np.full(n_eye, 5), np.full(n_eye, 6)])

    material = np.where(region[triangles].min(1) == 0, MATERIAL_NAMES.index("M_Face"),
                        MATERIAL_NAMES.index("M_BackHead"))
    n_ht = len(head_tris)
    n_et = len(eye.faces)
    for k, (iris_mask, iris_name, sclera_name) in enumerate(
        ((iris[0], "M_IrisLeft", "M_ScleraLeft"), (iris[1], "M_IrisRight", "M_ScleraRight"))
    ):
        sl = slice(n_ht + k * n_et, n_ht + (k + 1) * n_et)
        material[sl] = np.where(iris_mask, MATERIAL_NAMES.index(iris_name), MATERIAL_NAMES.index(sclera_name))

    # landmarks: the front-facing head vertex nearest to each template point in (x, y)
    template = _landmark_template()
    candidates = np.nonzero(unit[:, 2] > 0.2)[0]
    dist = np.linalg.norm(head[candidates, None, :2] - template[None], axis=-1)  # (C, 68)
    landmarks = candidates[dist.argmin(0)]

    all_normals = np.concatenate([normals, np.repeat([[0.0, 0.0, 1.0]], 2 * n_eye, 0)])
    fields = _identity_fields(rng, np.concatenate([head, *[np.repeat(p.mean(0, keepdims=True), n_eye, 0)
                                                           for p in eye_parts]]), all_normals)
    eye_sel = {"L": np.arange(n_head, n_head + n_eye), "R": np.arange(n_head + n_eye, n_head + 2 * n_eye)}
    all_xy = vertices[:, :2].copy()
    all_front = np.concatenate([front, np.zeros(2 * n_eye)])
    blend = np.stack([_blendshape(n, all_xy, all_front, eye_sel) for n in BLENDSHAPE_NAMES])

    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
         dict(vertices=vertices, triangles=triangles, region=region, material=material, landmarks=landmarks,
              fields=fields, blend=blend).items()}
    blend_t = t["blend"].float()
    region_t = t["region"].long()
    basis, std = expression_pca(blend_t, region_t == 0)
    skin_v, skin_t = skin_masks(region_t, t["triangles"].long(), t["material"].long(), MATERIAL_NAMES)
    return FaceModel(
        name="procedural-head",
        source="jointportrait.face_models.procedural",
        neutral=t["vertices"].float(),
        identity_basis=t["fields"].float(),
        expression_basis=basis,
        expression_std=std,
        blendshapes=blend_t,
        blendshape_names=list(BLENDSHAPE_NAMES),
        triangles=t["triangles"].long(),
        landmark_indices=t["landmarks"].long(),
        vertex_region=region_t,
        region_names=list(REGION_NAMES),
        triangle_material=t["material"].long(),
        material_names=list(MATERIAL_NAMES),
        skin_vertex_mask=skin_v,
        skin_triangle_mask=skin_t,
    )
