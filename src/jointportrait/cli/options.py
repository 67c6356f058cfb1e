"""Typed option groups of the commands: each adds its flags once and is built (and validated) once from them.

A group is a frozen dataclass with ``add_arguments(parser)`` and ``from_args(args)``;
``from_args`` is the one place where the group's values are checked, with a one-line
:class:`~jointportrait.errors.InputError` naming the flag. Commands hand the groups' plain
values to the applications; no ``argparse.Namespace`` travels further than ``run``.
torch is imported inside the methods that need it, so ``jointportrait --help`` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jointportrait.cli.face_crop import face_detector
from jointportrait.errors import InputError

DTYPES = ("float32", "bfloat16", "float16")
# the choices of the pipeline's ``inpaint_mode`` and ``timestep_spacing`` and of the applications' ``resize_mode``,
# written out here because importing the pipeline or the applications would load torch for ``--help``
INPAINT_MODES = ("auto", "conditioning", "replacement")
TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")
RESIZE_MODES = ("resize", "pad")
VAE_TILING = ("auto", "on", "off")


def torch_dtype(name: str):
    """``--dtype`` as a ``torch.dtype``."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def parse_device(name: str):
    """A ``--device`` value as a ``torch.device``; an unknown name or a missing GPU is a one-line error."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: CUDA was asked for but no GPU is available")
    return device


def parse_floats(text: str, count: int, option: str) -> list[float]:
    """``count`` comma-separated numbers of ``option``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise InputError(f"{option} must be {count} comma-separated numbers, got {text!r}")
    return values


@dataclass(frozen=True)
class OutputOptions:
    """``--out`` (a folder) and ``--overwrite``."""

    out: Path
    overwrite: bool

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="output folder")
        parser.add_argument("--overwrite", action="store_true", help="replace existing output files")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OutputOptions:
        return cls(args.out, args.overwrite)


@dataclass(frozen=True)
class FaceCropOptions:
    """``--face-crop --crop-size --face-index --face-margin`` (:mod:`jointportrait.cli.face_crop`): run the model
    on the square face crop of each photo and paste the result back. With ``--face-crop``, ``from_args`` loads
    the detector, so a missing ``faces`` extra stops the command before any model is loaded."""

    enabled: bool
    size: int
    face_index: int
    margin: float

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("face crop (needs the faces extra)")
        group.add_argument("--face-crop", action="store_true",
                           help="find the face, run the model on its square crop (the training data's crop rule) "
                                "and paste the result back into the full frame")
        group.add_argument("--crop-size", type=int, default=512, help="side of the face crop in pixels")
        group.add_argument("--face-index", type=int, default=0,
                           help="which face when there are several (0 = the largest)")
        group.add_argument("--face-margin", type=float, default=1.0, help="scale of the face crop's side")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FaceCropOptions:
        if args.face_crop:
            if args.crop_size < 16 or args.crop_size % 8:
                raise InputError(f"--crop-size must be a multiple of 8 and at least 16, got {args.crop_size}")
            if args.face_index < 0:
                raise InputError(f"--face-index must be >= 0, got {args.face_index}")
            if args.face_margin <= 0:
                raise InputError(f"--face-margin must be positive, got {args.face_margin}")
            face_detector()
        return cls(args.face_crop, args.crop_size, args.face_index, args.face_margin)


@dataclass(frozen=True)
class ModelOptions:
    """The joint model a command runs and how: ``--model --seed --device --dtype --steps --compile
    --channels-last``, and the face-crop group (:class:`FaceCropOptions`) that every model command shares."""

    model: Path | None
    seed: int
    device: str
    dtype: str
    steps: int
    face_crop: FaceCropOptions = FaceCropOptions(False, 512, 0, 1.0)  # off
    compile: bool = False
    channels_last: bool = False

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, required: bool = True, steps: int = 20) -> None:
        parser.add_argument("--model", type=Path, required=required,
                            help="joint model folder (jointportrait create / train)"
                            + ("" if required else "; needed only when the depth is estimated"))
        parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
        parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
        parser.add_argument("--dtype", default="float32", choices=DTYPES, help="model weights dtype")
        parser.add_argument("--steps", type=int, default=steps, help="number of denoising steps")
        parser.add_argument("--compile", action="store_true",
                            help="torch.compile the denoiser (the first call of each image size compiles; "
                                 "pays off over many images)")
        parser.add_argument("--channels-last", action="store_true",
                            help="channels-last weights (faster convolutions on some GPUs; slower in fp32 on CPU)")
        FaceCropOptions.add_arguments(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        if args.steps < 1:
            raise InputError(f"--steps must be >= 1, got {args.steps}")
        return cls(args.model, args.seed, args.device, args.dtype, args.steps, FaceCropOptions.from_args(args),
                   args.compile, args.channels_last)

    def torch_device(self):
        return parse_device(self.device)

    def torch_dtype(self):
        return torch_dtype(self.dtype)

    def generator(self):
        """A CPU torch generator seeded with ``--seed`` (the same seed gives the same output on any device)."""
        import torch

        return torch.Generator("cpu").manual_seed(self.seed)


@dataclass(frozen=True)
class SamplingOptions:
    """How the channel-wise inpainting commands sample: ``--processing-resolution --inpaint-mode``."""

    processing_resolution: int | None
    inpaint_mode: str

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--processing-resolution", type=int, default=None,
                            help="longer side while sampling (default: the model's native size; 0 = input size)")
        parser.add_argument("--inpaint-mode", default="auto", choices=INPAINT_MODES,
                            help="auto: mask conditioning for an 18-channel model, training-free latent "
                                 "replacement for an 8-channel one")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SamplingOptions:
        res = args.processing_resolution
        if res is not None and res < 0:
            raise InputError(f"--processing-resolution must be >= 0, got {res}")
        return cls(res, args.inpaint_mode)


@dataclass(frozen=True)
class EstimationOptions:
    """Depth-estimation options (``estimate-depth``, and ``edit``, ``relight``, ``export`` when they estimate):
    ``--ensemble --resize-mode --timestep-spacing --vae-tiling`` and the sampling options."""

    ensemble: int
    resize_mode: str
    timestep_spacing: str
    sampling: SamplingOptions
    vae_tiling: str = "auto"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--ensemble", type=int, default=1, help="samples merged by aligned per-pixel median")
        parser.add_argument("--resize-mode", default="resize", choices=RESIZE_MODES,
                            help="reach a multiple of 8 by resizing or by padding (outputs are at the input size)")
        parser.add_argument("--timestep-spacing", default="trailing", choices=TIMESTEP_SPACINGS,
                            help="scheduler timestep spacing for depth estimation")
        parser.add_argument("--vae-tiling", default="auto", choices=VAE_TILING,
                            help="tiled VAE (512 px tiles): auto = for canvases over four tiles (1024 x 1024 px)")
        SamplingOptions.add_arguments(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EstimationOptions:
        if args.ensemble < 1:
            raise InputError(f"--ensemble must be >= 1, got {args.ensemble}")
        return cls(args.ensemble, args.resize_mode, args.timestep_spacing, SamplingOptions.from_args(args),
                   args.vae_tiling)


@dataclass(frozen=True)
class BatchOptions:
    """``--batch-size``: photos per pipeline call, each with its ensemble (the depth latents are decoded at most
    that many at a time)."""

    batch_size: int

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1,
                            help="photos per model call (photos of one size share calls; more uses more memory)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BatchOptions:
        if args.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
        return cls(args.batch_size)


@dataclass(frozen=True)
class CameraOptions:
    """How a depth map becomes 3-D points (normals, relighting, export): ``--fov --intrinsics --orthographic
    --depth-range`` and, for commands that read depth files, ``--metric-depth``."""

    fov: float
    intrinsics: tuple[float, float, float, float] | None
    orthographic: bool
    metric_depth: bool
    depth_range: float

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, depth_files: bool = True) -> None:
        """``depth_files``: the command reads depth files, so ``--metric-depth`` says how to read them."""
        parser.add_argument("--fov", type=float, default=40.0,
                            help="horizontal field of view in degrees, when --intrinsics is not given")
        parser.add_argument("--intrinsics", default=None, help="fx,fy,cx,cy in pixels of the input image")
        parser.add_argument("--orthographic", action="store_true",
                            help="orthographic camera (covering what --fov sees at the subject distance)")
        if depth_files:
            parser.add_argument("--metric-depth", action="store_true",
                                help="given depth files hold camera z (larger = farther, <= 0 = missing) "
                                     "instead of relative depth in [0, 1]")
        parser.add_argument("--depth-range", type=float, default=0.3,
                            help="depth span of relative [0, 1] depth, in units of the subject distance")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CameraOptions:
        if not 0.0 < args.fov < 180.0:
            raise InputError(f"--fov must be in (0, 180) degrees, got {args.fov}")
        intrinsics = None
        if args.intrinsics:
            try:
                fx, fy, cx, cy = (float(v) for v in args.intrinsics.split(","))
            except ValueError:
                raise InputError(f"--intrinsics must be four numbers fx,fy,cx,cy, got {args.intrinsics!r}") from None
            if fx <= 0 or fy <= 0:
                raise InputError(f"--intrinsics: focal lengths must be positive, got fx={fx}, fy={fy}")
            intrinsics = (fx, fy, cx, cy)
        if args.depth_range <= 0:
            raise InputError(f"--depth-range must be positive, got {args.depth_range}")
        return cls(args.fov, intrinsics, args.orthographic, getattr(args, "metric_depth", False), args.depth_range)

    def backprojection(self, height: int, width: int) -> dict[str, Any]:
        """``{"intrinsics": K}`` or ``{"pixel_size": s}``: the camera keywords of
        :func:`~jointportrait.geometry.cameras.backproject` and :func:`~jointportrait.geometry.normals.normals_from_depth`."""
        import torch

        from jointportrait.geometry.cameras import (
            intrinsics_from_fov,
            intrinsics_matrix,
            orthographic_pixel_size,
        )

        if self.orthographic:
            return {"pixel_size": orthographic_pixel_size(width, self.fov)}
        if self.intrinsics is not None:
            return {"intrinsics": intrinsics_matrix(*self.intrinsics, dtype=torch.float64).numpy()}
        return {"intrinsics": intrinsics_from_fov(height, width, self.fov)}

    def camera_depth(self, depth: np.ndarray, metric: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(camera z, valid)`` of a depth map: metric z as is (<= 0 missing), or relative depth placed by
        ``--depth-range`` at the subject distance."""
        from jointportrait.geometry.cameras import relative_to_camera_depth

        if metric:
            return depth.astype(np.float64), depth > 0
        return relative_to_camera_depth(depth, depth_range=self.depth_range), np.isfinite(depth)


@dataclass(frozen=True)
class DepthSourceOptions:
    """``relight`` and ``export``: a photo's depth from ``--depth`` (given) or ``--model`` (estimated), with the
    model, output, estimation and camera groups (see :class:`jointportrait.cli.pipeline.DepthSource`)."""

    depth: Path | None
    model: ModelOptions
    output: OutputOptions
    estimation: EstimationOptions
    camera: CameraOptions

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--depth", type=Path, default=None,
                            help="depth map (file, or folder matched by name: <stem>.npy or <stem>_depth.npy); "
                                 "default: estimated with --model")
        ModelOptions.add_arguments(parser, required=False, steps=10)
        OutputOptions.add_arguments(parser)
        EstimationOptions.add_arguments(parser)
        CameraOptions.add_arguments(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DepthSourceOptions:
        if args.depth is None and args.model is None:
            raise InputError("give --depth (depth maps) or --model (to estimate them)")
        if args.depth is not None and args.face_crop:
            raise InputError("--face-crop applies to depth estimated with --model, not to given --depth maps")
        return cls(args.depth, ModelOptions.from_args(args), OutputOptions.from_args(args),
                   EstimationOptions.from_args(args), CameraOptions.from_args(args))


def add_face_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--face-model`` of ``synth``, ``track`` and ``demo`` (:func:`jointportrait.face_models.load_face_model`)."""
    parser.add_argument("--face-model", default=None, metavar="NAME|PATH",
                        help="face model: 'ict' (default: the ICT-FaceKit light model shipped with the package), "
                             "'procedural' (the built-in procedural head) or an ICT-style .npz file")
