"""Rasteriser speed: 512x512 depth + normals of the ICT face model, against trimesh + embree ray casting.

Both produce per-pixel camera-space depth and a normal for the same camera
(the embree side returns the hit triangle's face normal; ours are smooth
interpolated normals, slightly more work). The ratio is embree time / ours:
above 1 means the PyTorch rasteriser is faster. Uses the ICT model shipped with the package
(named in the table).
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.report import timeit, update_section
from jointportrait.face_models import load_face_model
from jointportrait.geometry.cameras import MODEL_TO_OPENCV, PerspectiveCamera, intrinsics_matrix
from jointportrait.render import rasterize

SIZE = 512


def main() -> None:
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    model = load_face_model()
    verts = model.vertices() @ MODEL_TO_OPENCV.T + torch.tensor([0.0, 0.0, 60.0])  # (1, V, 3)
    focal = 1200.0 * SIZE / 512
    K = intrinsics_matrix(focal, focal, (SIZE - 1) / 2, (SIZE - 1) / 2)
    camera = PerspectiveCamera(K[None])

    def ours():
        frags = rasterize(verts, model.triangles, camera, SIZE, SIZE)
        return frags.depth, frags.normals

    mesh = trimesh.Trimesh(verts[0].double().numpy(), model.triangles.numpy(), process=False)
    intersector = RayMeshIntersector(mesh)
    jj, ii = np.meshgrid(np.arange(SIZE), np.arange(SIZE))
    dirs = np.stack([(jj - K[0, 2].item()) / focal, (ii - K[1, 2].item()) / focal, np.ones(jj.shape)], -1)
    dirs = dirs.reshape(-1, 3)
    origins = np.zeros_like(dirs)
    face_normals = mesh.face_normals

    def embree():
        loc, ray_idx, tri_idx = intersector.intersects_location(origins, dirs, multiple_hits=False)
        depth = np.zeros(SIZE * SIZE)
        depth[ray_idx] = loc[:, 2]
        normals = np.zeros((SIZE * SIZE, 3))
        normals[ray_idx] = face_normals[tri_idx]
        return depth, normals

    covered = int(ours()[0].gt(0).sum())
    threads = torch.get_num_threads()
    t_embree = timeit(embree, repeats=7)
    rows = []
    # the rasteriser's tensors are ~1e5 elements: one intra-op thread is often the faster setting on a busy
    # machine, so both settings are measured
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        t = timeit(ours, repeats=7)
        rows.append(f"| jointportrait.render.rasterize (PyTorch CPU, {n} thread{'s' if n > 1 else ''}) | "
                    f"{t * 1000:.1f} ms | {t_embree / t:.2f}x |")
    torch.set_num_threads(threads)
    table = (
        f"### Depth rendering ({SIZE}x{SIZE} depth + normals, {model.name}, "
        f"{model.triangles.shape[0]:,} triangles, {covered:,} covered pixels)\n\n"
        "| renderer | median time | speed-up vs embree |\n| --- | --- | --- |\n"
        f"| trimesh + embreex ray casting (baseline) | {t_embree * 1000:.1f} ms | 1.00x |\n"
        + "\n".join(rows) + "\n"
    )
    print(table)
    update_section("render", table)


if __name__ == "__main__":
    main()
