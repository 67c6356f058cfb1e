"""The command line's typed option groups, and its module structure (no command imports another)."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jointportrait.cli as cli_package
from jointportrait.cli.main import COMMANDS
from jointportrait.cli.options import (
    CameraOptions,
    DepthSourceOptions,
    EstimationOptions,
    ModelOptions,
    OutputOptions,
)
from jointportrait.errors import InputError


def _parse(groups, argv):
    parser = argparse.ArgumentParser()
    for add in groups:
        add(parser)
    return parser.parse_args(argv)


def test_groups_are_built_once_with_typed_values():
    args = _parse([ModelOptions.add_arguments, OutputOptions.add_arguments, EstimationOptions.add_arguments],
                  ["--model", "m", "--out", "o", "--steps", "3", "--ensemble", "2", "--processing-resolution", "0"])
    model, output, estimation = ModelOptions.from_args(args), OutputOptions.from_args(args), EstimationOptions.from_args(args)
    assert model == ModelOptions(Path("m"), 0, "cpu", "float32", 3)
    assert output == OutputOptions(Path("o"), False)
    assert (estimation.ensemble, estimation.resize_mode, estimation.timestep_spacing) == (2, "resize", "trailing")
    assert (estimation.sampling.processing_resolution, estimation.sampling.inpaint_mode) == (0, "auto")
    assert model.generator().initial_seed() == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--ensemble", "0"], "--ensemble must be >= 1"),
    (["--processing-resolution", "-8"], "--processing-resolution must be >= 0"),
    (["--fov", "180"], "--fov must be in (0, 180)"),
    (["--intrinsics", "1,2,3"], "--intrinsics must be four numbers"),
    (["--intrinsics", "0,1,2,3"], "focal lengths must be positive"),
    (["--depth-range", "0"], "--depth-range must be positive"),
])
def test_bad_values_are_refused_at_the_boundary(argv, message):
    groups = [ModelOptions.add_arguments, EstimationOptions.add_arguments, CameraOptions.add_arguments]
    args = _parse(groups, ["--model", "m", *argv])
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelOptions.from_args(args), EstimationOptions.from_args(args), CameraOptions.from_args(args)


def test_depth_source_needs_a_depth_or_a_model():
    with pytest.raises(InputError, match="give --depth"):
        DepthSourceOptions.from_args(_parse([DepthSourceOptions.add_arguments], ["--out", "o"]))
    given = DepthSourceOptions.from_args(_parse([DepthSourceOptions.add_arguments], ["--out", "o", "--depth", "d.npy"]))
    assert given.depth == Path("d.npy") and given.model.model is None and given.model.steps == 10
    assert (given.camera.metric_depth, given.estimation.ensemble, given.output.out) == (False, 1, Path("o"))


def test_camera_options_give_the_backprojection_camera():
    fov = CameraOptions.from_args(_parse([CameraOptions.add_arguments], ["--fov", "90"]))
    np.testing.assert_allclose(fov.backprojection(30, 40)["intrinsics"], [[20, 0, 19.5], [0, 20, 14.5], [0, 0, 1]])
    given = CameraOptions.from_args(_parse([CameraOptions.add_arguments], ["--intrinsics", "50,60,22,15"]))
    np.testing.assert_array_equal(given.backprojection(30, 44)["intrinsics"], [[50, 0, 22], [0, 60, 15], [0, 0, 1]])
    ortho = CameraOptions.from_args(_parse([CameraOptions.add_arguments], ["--orthographic", "--fov", "90"]))
    assert ortho.backprojection(30, 40) == {"pixel_size": pytest.approx(2.0 / 40)}
    relative = np.array([[0.0, 1.0]])
    z, valid = fov.camera_depth(relative, metric=False)  # placed at distance 1 with span --depth-range 0.3
    np.testing.assert_allclose(z, [[1.0, 1.3]])
    assert valid.all()
    z, valid = fov.camera_depth(np.array([[0.0, 2.5]]), metric=True)
    assert valid.tolist() == [[False, True]]


def test_no_command_module_imports_another():
    """Commands share code through the support modules (options, inputs, writers, batch, pipeline) only."""
    folder = Path(cli_package.__file__).parent
    commands = {module for module, _ in COMMANDS.values()}
    for name in sorted(commands):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jointportrait.cli."):
                imported.add(node.module.removeprefix("jointportrait.cli."))
            elif isinstance(node, ast.ImportFrom) and node.module == "jointportrait.cli":
                imported |= {alias.name for alias in node.names}
        assert not imported & commands, f"cli/{name}.py imports the command module(s) {sorted(imported & commands)}"


def test_help_does_not_load_torch():
    """Building every command's parser (what ``--help`` does) imports no torch, diffusers or OpenCV."""
    code = ("import sys; import jointportrait.cli.main as m; m.build_parser(); "
            "print(sorted(n for n in ('torch', 'diffusers', 'cv2', 'trimesh') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
