"""The ICT-FaceKit "Face Model Light" reader, and the copy that ships with the package (paper Sec. 5.1).

``ict_face_model_light.npz`` (in ``assets/``, with its MIT licence ``LICENSE-ICT-FaceKit.txt`` and a
README of its keys) is the ICT-FaceKit light model converted to one NumPy archive: 17,202 vertices,
50 identity modes and 53 ARKit-style expression blendshapes in centimetres.
:func:`read_ict_npz` reads it, or any archive with the same keys, into a
:class:`~jointportrait.face_models.model.FaceModel` named ``"ict-facekit-light"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jointportrait.errors import InputError
from jointportrait.face_models.model import FACE_REGION, NUM_IDENTITY, FaceModel, expression_pca, skin_masks

ICT_LIGHT_PATH = Path(__file__).resolve().with_name("assets") / "ict_face_model_light.npz"
REQUIRED_KEYS = ("neutral_vertices", "identity_modes", "expression_blendshapes", "expression_names", "triangles",
                 "triangle_material", "material_names", "vertex_region", "region_names", "landmarks_68")


def read_ict_npz(path: Path) -> FaceModel:
    """The face model of an ICT-style ``.npz`` archive (see ``assets/README.md`` for its keys)."""
    try:
        data = np.load(path, allow_pickle=False)
        missing = [k for k in REQUIRED_KEYS if k not in data.files]
        if missing:
            raise InputError(f"{path}: not a face model archive (missing {', '.join(missing)})")
        arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable face model archive ({exc})") from None
    blend = torch.from_numpy(arrays["expression_blendshapes"].astype(np.float32))
    region = torch.from_numpy(arrays["vertex_region"].astype(np.int64))
    tris = torch.from_numpy(arrays["triangles"].astype(np.int64))
    material = torch.from_numpy(arrays["triangle_material"].astype(np.int64))
    materials = [str(n) for n in arrays["material_names"]]
    basis, std = expression_pca(blend, region == FACE_REGION)
    skin_v, skin_t = skin_masks(region, tris, material, materials)
    return FaceModel(
        name="ict-facekit-light",
        source=str(path),
        neutral=torch.from_numpy(arrays["neutral_vertices"].astype(np.float32)),
        identity_basis=torch.from_numpy(arrays["identity_modes"][:NUM_IDENTITY].astype(np.float32)),
        expression_basis=basis,
        expression_std=std,
        blendshapes=blend,
        blendshape_names=[str(n) for n in arrays["expression_names"]],
        triangles=tris,
        landmark_indices=torch.from_numpy(arrays["landmarks_68"].astype(np.int64)),
        vertex_region=region,
        region_names=[str(n) for n in arrays["region_names"]],
        triangle_material=material,
        material_names=materials,
        skin_vertex_mask=skin_v,
        skin_triangle_mask=skin_t,
        uv_coords=torch.from_numpy(arrays["uv_coords"]) if "uv_coords" in arrays else None,
        triangle_uvs=torch.from_numpy(arrays["triangle_uvs"].astype(np.int64)) if "triangle_uvs" in arrays else None,
    )
