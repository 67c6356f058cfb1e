"""Face models: the registry and the packaged ICT model, the PCA expression basis, the procedural head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointportrait.errors import MissingPathError
from jointportrait.face_models import DEFAULT_FACE_MODEL, FACE_MODELS, load_face_model
from jointportrait.face_models.ict import ICT_LIGHT_PATH
from jointportrait.face_models.model import FACE_REGION
from jointportrait.face_models.procedural import build_procedural_head


@pytest.fixture(params=["file", "procedural"])
def model(request, face_model_path):
    return load_face_model(face_model_path if request.param == "file" else "procedural")


def test_shapes_and_names(model):
    V, F = model.num_vertices, model.triangles.shape[0]
    assert model.identity_basis.shape == (50, V, 3)
    assert model.expression_basis.shape == (25, V, 3)
    assert model.blendshapes.shape == (53, V, 3) and len(model.blendshape_names) == 53
    assert "jawOpen" in model.blendshape_names
    assert model.landmark_indices.shape == (68,) and int(model.landmark_indices.max()) < V
    assert model.vertex_region.shape == (V,) and model.triangle_material.shape == (F,)
    assert model.skin_triangle_mask.any() and not model.skin_triangle_mask.all()
    assert model.name in ("ict-facekit-light", "procedural-head")


def test_expression_basis_is_the_pca_of_the_blendshapes(model):
    # independent check: eigen-decomposition of the 53x53 Gram matrix of the face-region deltas
    face = (model.vertex_region == FACE_REGION).numpy()
    data = model.blendshapes.numpy()[:, face].reshape(53, -1).astype(np.float64)
    evals, evecs = np.linalg.eigh(data @ data.T)
    top = evecs[:, ::-1][:, :25]
    expected_std = np.sqrt(np.maximum(evals[::-1][:25], 0) / 53)
    np.testing.assert_allclose(model.expression_std.numpy(), expected_std, rtol=1e-3)
    expected = np.einsum("jk,jvc->kvc", top, model.blendshapes.numpy().astype(np.float64)) / np.sqrt(53)
    ours = model.expression_basis.numpy().astype(np.float64)
    signs = np.sign(np.sum(expected * ours, axis=(1, 2)))
    np.testing.assert_allclose(ours, expected * signs[:, None, None], atol=2e-3 * np.abs(expected).max())
    # components are orthogonal on the face region
    flat = ours[:, face].reshape(25, -1)
    gram = flat @ flat.T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-3 * gram.max())


def test_vertices_are_linear_and_differentiable(model):
    identity = torch.zeros(2, 50, requires_grad=True)
    expression = torch.zeros(2, 25, requires_grad=True)
    with torch.no_grad():
        identity[1, 3] = 1.0
        expression[1, 0] = -2.0
    verts = model.vertices(identity, expression)
    torch.testing.assert_close(verts[0], model.neutral)
    torch.testing.assert_close(verts[1], model.neutral + model.identity_basis[3] - 2 * model.expression_basis[0],
                               atol=1e-5, rtol=1e-5)
    verts.sum().backward()
    torch.testing.assert_close(identity.grad[0], model.identity_basis.double().sum(dim=(1, 2)).float(), rtol=1e-4,
                               atol=1e-3)


def test_blendshape_projection_is_the_orthogonal_projection(model):
    weights = torch.rand(3, 53, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    face = model.vertex_region == FACE_REGION
    # closed form: the components are orthogonal on the face region, so c_k = <x, E_k> / <E_k, E_k>
    basis = model.expression_basis[:, face].flatten(1).double()
    target = weights @ model.blendshapes[:, face].flatten(1).double()
    expected = (target @ basis.T) / (basis * basis).sum(1)
    torch.testing.assert_close(model.project_blendshapes(weights).double(), expected, atol=1e-3, rtol=1e-3)


def test_the_packaged_ict_model_is_the_default_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing beside the working folder
    model = load_face_model()
    assert DEFAULT_FACE_MODEL == "ict" and set(FACE_MODELS) == {"ict", "procedural"}
    assert model.name == "ict-facekit-light" and model.source == str(ICT_LIGHT_PATH)
    assert model.num_vertices == 17202 and load_face_model("ict") is model  # cached per name
    licence = ICT_LIGHT_PATH.with_name("LICENSE-ICT-FaceKit.txt").read_text()
    assert "MIT License" in licence and "USC Institute for Creative Technologies" in licence
    assert load_face_model("procedural").name == "procedural-head"


def test_a_path_still_works_and_a_missing_one_is_an_error(tmp_path):
    copy = tmp_path / "ict copy.npz"
    copy.write_bytes(ICT_LIGHT_PATH.read_bytes())
    model = load_face_model(copy)
    assert model.name == "ict-facekit-light" and model.source == str(copy)
    torch.testing.assert_close(model.neutral, load_face_model("ict").neutral)
    with pytest.raises(MissingPathError, match="nope.npz"):
        load_face_model(tmp_path / "nope.npz")


def test_procedural_head_is_deterministic_and_faces_the_viewer():
    a, b = build_procedural_head(subdivisions=3), build_procedural_head(subdivisions=3)
    torch.testing.assert_close(a.identity_basis, b.identity_basis)
    lm = a.neutral[a.landmark_indices]
    assert (lm[:, 2] > 0).all()  # landmarks on the front (+z) half
    assert lm[30, 2] > lm[0, 2]  # nose tip (30) in front of the jaw line's end (0)
    assert lm[36:42, 0].mean() < 0 < lm[42:48, 0].mean()  # subject's right eye at -x
