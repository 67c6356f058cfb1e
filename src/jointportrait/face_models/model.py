"""The linear morphable face model type (paper Sec. 5.1: a PCA face model of 50 identity and 25 expression
components behind the synthetic studio data and the tracker).

All arrays are torch tensors on the CPU (float32 / int64 / bool). Units are
centimetres in the model frame: +x to the subject's left, +y up, +z towards
the viewer (the face looks down +z). Cameras use OpenCV axes; the pose code
converts with :data:`jointportrait.geometry.cameras.MODEL_TO_OPENCV`.

Expression basis: the 53 named blendshapes (ARKit-style deltas, weights in
[0, 1]) are kept, and the paper's 25 components are their principal
directions over the face region: the SVD ``B_face = U S V^T`` of the deltas
(one sample per blendshape at full activation, uncentred so that zero stays
the neutral face), each component extended to the whole mesh as
``E_k = sum_j U_jk B_j / sqrt(53)``. ``E_k`` has the scale of the component's
RMS over the blendshapes, so coefficients are ~N(0, 1). :func:`expression_pca`
and :func:`skin_masks` derive these parts for every model kind
(:mod:`.ict`, :mod:`.procedural`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

NUM_IDENTITY = 50
NUM_EXPRESSION = 25
REGION_NAMES = ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right",
                "eyeball_left", "eyeball_right")
FACE_REGION = 0


@dataclass
class FaceModel:
    """A linear face model: ``v = neutral + sum_i a_i identity_basis_i + sum_k e_k expression_basis_k``.

    Shapes: neutral (V, 3); identity_basis (50, V, 3), coefficients ~N(0, 1);
    expression_basis (25, V, 3), coefficients ~N(0, 1); expression_std (25,) the
    RMS of each component over the blendshapes (before scaling into the basis);
    blendshapes (53, V, 3) with ``blendshape_names``, weights in [0, 1];
    triangles (F, 3) int64; landmark_indices (68,) int64; vertex_region (V,)
    int64 into ``region_names``; triangle_material (F,) int64 into
    ``material_names``; skin_vertex_mask (V,) and skin_triangle_mask (F,) bool
    (face skin without eyes and mouth interior); uv_coords (T, 2) and
    triangle_uvs (F, 3) when the model has them.
    """

    name: str
    source: str
    neutral: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor
    expression_std: torch.Tensor
    blendshapes: torch.Tensor
    blendshape_names: list[str]
    triangles: torch.Tensor
    landmark_indices: torch.Tensor
    vertex_region: torch.Tensor
    region_names: list[str]
    triangle_material: torch.Tensor
    material_names: list[str]
    skin_vertex_mask: torch.Tensor
    skin_triangle_mask: torch.Tensor
    uv_coords: torch.Tensor | None = None
    triangle_uvs: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def device(self) -> torch.device:
        return self.neutral.device

    def to(self, device: str | torch.device) -> FaceModel:
        """A copy with every tensor on ``device`` (the tracker fits on the model's device); ``extras`` are
        dropped (caches derived on the old device)."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if torch.is_tensor(getattr(self, f.name))}
        return replace(self, **moved, extras={})

    def vertices(self, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None,
                 blendshape_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Model-frame vertices ``(B, V, 3)`` for identity ``(B, 50)``, PCA expression ``(B, 25)`` and/or
        blendshape weights ``(B, 53)``; any may be None (zeros). Differentiable in all inputs."""
        batch = next((t.shape[0] for t in (identity, expression, blendshape_weights) if t is not None), 1)
        out = self.neutral.expand(batch, -1, -1)  # (B, V, 3)
        for coeffs, basis in ((identity, self.identity_basis), (expression, self.expression_basis),
                              (blendshape_weights, self.blendshapes)):
            if coeffs is not None:
                if coeffs.shape != (batch, basis.shape[0]):
                    raise ValueError(f"coefficients must be ({batch}, {basis.shape[0]}), got {tuple(coeffs.shape)}")
                out = out + torch.einsum("bk,kvc->bvc", coeffs.to(basis.dtype), basis)  # (B, V, 3)
        return out

    def project_blendshapes(self, weights: torch.Tensor) -> torch.Tensor:
        """Blendshape weights ``(B, 53)`` -> the PCA expression coefficients ``(B, 25)`` nearest to them on the
        face region (least squares; exact when the weights lie in the span of the 25 components)."""
        if "blend_to_pca" not in self.extras:  # linear in the weights: solve once for all 53 blendshapes
            face = self.vertex_region == FACE_REGION
            basis = self.expression_basis[:, face].flatten(1).double()  # (25, 3Vf)
            shapes = self.blendshapes[:, face].flatten(1).double()  # (53, 3Vf)
            self.extras["blend_to_pca"] = torch.linalg.lstsq(basis.T, shapes.T).solution  # (25, 53)
        return (weights.double() @ self.extras["blend_to_pca"].T).float()  # (B, 25)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 landmark positions ``(B, 68, 3)`` of vertices ``(B, V, 3)``."""
        return vertices[:, self.landmark_indices]


def expression_pca(blendshapes: torch.Tensor, region_mask: torch.Tensor,
                   num_components: int = NUM_EXPRESSION) -> tuple[torch.Tensor, torch.Tensor]:
    """The expression basis ``(K, V, 3)`` (scaled to unit-variance coefficients) and RMS ``(K,)`` of each
    component: uncentred PCA of the blendshape deltas ``(J, V, 3)`` restricted to ``region_mask`` (V,)."""
    num_shapes = blendshapes.shape[0]
    data = blendshapes[:, region_mask].flatten(1).double()  # (J, 3Vr)
    u, s, _ = torch.linalg.svd(data, full_matrices=False)  # u (J, J), s (J,)
    u = u[:, :num_components] * torch.sign(u[:, :num_components].sum(0, keepdim=True) + 1e-30)  # fixed sign
    basis = torch.einsum("jk,jvc->kvc", u, blendshapes.double()) / np.sqrt(num_shapes)  # (K, V, 3)
    return basis.float(), (s[:num_components] / np.sqrt(num_shapes)).float()


def skin_masks(vertex_region: torch.Tensor, triangles: torch.Tensor, triangle_material: torch.Tensor,
               material_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Skin vertices (face region) and triangles (face material, all corners in the face region)."""
    skin_v = vertex_region == FACE_REGION
    face_material = material_names.index("M_Face") if "M_Face" in material_names else -1
    skin_t = skin_v[triangles].all(dim=1) & (triangle_material == face_material)
    return skin_v, skin_t
