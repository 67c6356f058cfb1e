"""``jointportrait export``: photo(s) + depth -> coloured point cloud or triangle mesh (PLY, OBJ, GLB).

Depth comes from ``--depth`` (file or folder) or is estimated with ``--model``; colours
from ``--image``. The camera is ``--intrinsics`` or a ``--fov`` (perspective), or
``--orthographic``. Outputs ``<stem>.<format>`` (point cloud: PLY or GLB; ``--mesh``: PLY,
OBJ or GLB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.inputs import collect_files
from jointportrait.cli.options import DepthSourceOptions
from jointportrait.cli.pipeline import DepthSource
from jointportrait.cli.writers import check_outputs_free
from jointportrait.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="photo, or a folder of photos (colours)")
    DepthSourceOptions.add_arguments(parser)
    parser.add_argument("--format", default="ply", choices=("ply", "obj", "glb"), help="output file format")
    parser.add_argument("--mesh", action="store_true", help="triangle mesh instead of a point cloud")
    parser.add_argument("--max-depth-jump", type=float, default=0.05,
                        help="mesh: drop triangles whose depth spread exceeds this fraction of their depth")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jointportrait.geometry.cameras import backproject
    from jointportrait.geometry.export import depth_mesh, point_cloud, save_geometry
    from jointportrait.io import check_writable, load_image

    if args.format == "obj" and not args.mesh:
        raise InputError("--format obj needs --mesh (OBJ has no point clouds); use ply or glb for points")
    if args.max_depth_jump < 0:
        raise InputError(f"--max-depth-jump must be >= 0, got {args.max_depth_jump}")
    source = DepthSourceOptions.from_args(args)
    output, camera = source.output, source.camera
    files = collect_files(args.image)
    depth_of = DepthSource(source)
    output.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        out_path = output.out / f"{path.stem}.{args.format}"
        check_outputs_free([out_path], output.overwrite)
        image = load_image(path)
        z, valid = depth_of(path, image)
        if not valid.any():
            raise InputError(f"{path}: the depth has no valid pixel")
        points = backproject(np.where(valid, z, 0.0), **camera.backprojection(image.height, image.width))
        colors = np.asarray(image)
        if args.mesh:
            geometry = depth_mesh(points, colors, valid, args.max_depth_jump)
        else:
            geometry = point_cloud(points, colors, valid)
        save_geometry(geometry, check_writable(out_path, output.overwrite))

    return run_batch(files, process, "export", output.out)
