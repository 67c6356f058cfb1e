"""``jointportrait render-depth``: depth maps of registered meshes seen by given cameras (paper Sec. 5.1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.inputs import collect_files
from jointportrait.cli.options import OutputOptions, parse_device
from jointportrait.cli.writers import check_outputs_free


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mesh", type=Path, required=True, help="a mesh file (OBJ, PLY, GLB, ...) or a folder of them")
    parser.add_argument("--camera", type=Path, required=True,
                        help="camera JSON: intrinsics (3x3), world_to_camera (4x4, OpenCV axes), width, height; "
                             "or a list of them for several views")
    OutputOptions.add_arguments(parser)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from jointportrait.geometry.cameras import PerspectiveCamera
    from jointportrait.io import save_depth_npy, save_depth_png16, save_image
    from jointportrait.render import rasterize
    from jointportrait.render.mesh_io import MESH_SUFFIXES, load_cameras, load_mesh

    device, output = parse_device(args.device), OutputOptions.from_args(args)
    meshes = collect_files(args.mesh, MESH_SUFFIXES, what="mesh")
    cameras = load_cameras(args.camera)
    jobs = [(m, c) for m in meshes for c in cameras]
    stems = {(m, c.name): (f"{m.stem}_{c.name}" if len(cameras) > 1 else m.stem) for m, c in jobs}
    suffixes = ("_depth.npy", "_depth.png", "_mask.png")
    check_outputs_free([output.out / f"{s}{x}" for s in stems.values() for x in suffixes], output.overwrite)
    output.out.mkdir(parents=True, exist_ok=True)
    empty = []
    for mesh_path in tqdm(meshes, desc="meshes", disable=len(meshes) == 1):
        vertices, triangles = load_mesh(mesh_path)
        verts = torch.from_numpy(vertices).to(device)[None]  # float64: depth exact to the mesh's precision
        tris = torch.from_numpy(triangles).to(device)
        for cam in cameras:
            camera = PerspectiveCamera(torch.from_numpy(cam.intrinsics)[None].to(device),
                                       torch.from_numpy(cam.world_to_camera)[None].to(device))
            frags = rasterize(camera.world_to_view(verts), tris, camera, cam.height, cam.width, normals=False)
            depth = frags.depth[0].float().cpu().numpy()
            mask = frags.mask[0].cpu().numpy()
            stem = stems[(mesh_path, cam.name)]
            save_depth_npy(output.out / f"{stem}_depth.npy", depth, overwrite=output.overwrite)
            preview = np.zeros_like(depth)
            if mask.any():  # 16-bit preview: near = bright, scaled over the covered depth range, 0 = background
                lo, hi = float(depth[mask].min()), float(depth[mask].max())
                preview[mask] = 1.0 - 0.9 * (depth[mask] - lo) / max(hi - lo, 1e-12)
            else:
                empty.append(stem)
            save_depth_png16(output.out / f"{stem}_depth.png", preview, overwrite=output.overwrite)
            save_image(output.out / f"{stem}_mask.png", mask.astype(np.uint8) * 255, overwrite=output.overwrite)
    print(f"wrote {len(jobs)} depth map(s) to {output.out} (float32 camera-space z in the mesh's units, "
          f"0 = no surface; *_depth.png is a near-bright preview, *_mask.png the coverage)")
    if empty:
        print(f"warning: no surface in view for {', '.join(empty)}")
    return 0
