"""``jointportrait relight``: photo(s) + depth -> normals, diffuse shading, relit image (paper Suppl. 8.2).

The depth is ``--depth`` (file or folder; relative [0, 1] as written by ``estimate-depth``
unless ``--metric-depth``) or estimated by ``--model``. Light: ``--light x,y,z`` (direction
toward the light; x right, y up, z toward the viewer) or ``--sh`` with 9 spherical-harmonics
coefficients. Outputs ``<stem>_relit.png``, ``<stem>_shading.png``, ``<stem>_normals.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.batch import run_batch
from jointportrait.cli.inputs import collect_files
from jointportrait.cli.options import DepthSourceOptions, parse_floats
from jointportrait.cli.pipeline import DepthSource
from jointportrait.cli.writers import check_outputs_free, save_normals_image
from jointportrait.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="photo, or a folder of photos")
    DepthSourceOptions.add_arguments(parser)
    light = parser.add_mutually_exclusive_group()
    light.add_argument("--light", default="-0.5,0.5,1", help="directional light: direction toward the light "
                       "x,y,z (x right, y up, z toward the viewer); write a leading minus as --light=-1,1,1")
    light.add_argument("--sh", default=None, help="9 spherical-harmonics lighting coefficients "
                       "L00,L1-1,L10,L11,L2-2,L2-1,L20,L21,L22 (instead of --light)")
    parser.add_argument("--intensity", type=float, default=1.0, help="directional light intensity")
    parser.add_argument("--ambient", type=float, default=0.3, help="ambient term added to the directional light")
    parser.add_argument("--mode", default="multiply", choices=("multiply", "ratio"),
                        help="multiply the photo by the new shading, or by new / estimated original shading")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jointportrait.appearance.shading import lambert_shading, sh_shading
    from jointportrait.applications.relight import relight_image
    from jointportrait.geometry.normals import normals_from_depth
    from jointportrait.io import load_image, save_image

    light = parse_floats(args.light, 3, "--light")
    if not any(light):
        raise InputError("--light must not be the zero vector")
    sh = parse_floats(args.sh, 9, "--sh") if args.sh else None
    source = DepthSourceOptions.from_args(args)
    output, camera = source.output, source.camera
    files = collect_files(args.image)
    depth_of = DepthSource(source)
    output.out.mkdir(parents=True, exist_ok=True)

    def process(path: Path) -> None:
        names = {k: output.out / f"{path.stem}_{k}.png" for k in ("relit", "shading", "normals")}
        check_outputs_free(names.values(), output.overwrite)
        image = load_image(path)
        z, valid = depth_of(path, image)
        normals = normals_from_depth(z, valid=valid, **camera.backprojection(image.height, image.width))
        if sh is not None:
            shading = sh_shading(normals, sh)
        else:
            shading = lambert_shading(normals, light, intensity=args.intensity, ambient=args.ambient)
        result = relight_image(np.asarray(image) / 255.0, normals, shading, mode=args.mode)
        save_image(names["relit"], result.image, overwrite=output.overwrite)
        save_image(names["shading"], np.clip(shading, 0.0, 1.0), overwrite=output.overwrite)
        save_normals_image(names["normals"], normals, output.overwrite)

    return run_batch(files, process, "relight", output.out)
