"""The joint model as the commands run it: loading, depth estimation with the options, and the depth of a photo.

``edit``, ``relight`` and ``export`` estimate depth exactly as ``estimate-depth`` does when
no depth file is given; they share :func:`estimate_with_options` and :class:`DepthSource`
here, so no command module imports another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from jointportrait.cli.face_crop import crop_image, face_crop, paste_depth
from jointportrait.cli.inputs import companion_file, load_user_depth
from jointportrait.cli.options import DepthSourceOptions, EstimationOptions, ModelOptions, SamplingOptions
from jointportrait.errors import InputError
from jointportrait.io import DEPTH_SUFFIXES

logger = logging.getLogger(__name__)


def load_pipeline(model: ModelOptions, sampling: SamplingOptions | None = None):
    """The pipeline of ``--model`` on ``--device`` in ``--dtype``; with ``sampling``, ``--inpaint-mode`` is checked
    against the loaded model (and the automatic choice of latent replacement is logged)."""
    from diffusers.utils import logging as diffusers_logging

    from jointportrait.loading import load_joint_pipeline

    device = model.torch_device()
    diffusers_logging.disable_progress_bar()  # the CLI's own bars and one-line errors stay readable
    pipe = load_joint_pipeline(model.model, device=device, dtype=model.torch_dtype())
    if model.channels_last:
        pipe.enable_channels_last()
    if model.compile:
        pipe.compile_denoiser()
    if sampling is not None:
        if sampling.inpaint_mode == "conditioning" and not pipe.is_inpainting_model:
            raise InputError("--inpaint-mode conditioning needs an 18-channel (stage-2) model; this one has 8")
        if sampling.inpaint_mode == "auto" and not pipe.is_inpainting_model:
            logger.warning("8-channel (stage-1) model: using training-free latent replacement for the known domain")
    return pipe


def estimate_with_options(pipe, image, model: ModelOptions, estimation: EstimationOptions, reference=None,
                          where: str = "image"):
    """The depth estimate (:class:`~jointportrait.applications.depth_estimation.DepthEstimate`) of a PIL image;
    with ``--face-crop`` estimated on the face crop and pasted back (NaN outside the crop)."""
    from jointportrait.applications.depth_estimation import estimate_depth

    crop, image, reference = face_crop_inputs(model, image, reference, where)
    result = estimate_depth(
        pipe, image, reference=reference, num_inference_steps=model.steps, ensemble_size=estimation.ensemble,
        processing_resolution=estimation.sampling.processing_resolution, resize_mode=estimation.resize_mode,
        spacing=estimation.timestep_spacing, inpaint_mode=estimation.sampling.inpaint_mode,
        generator=model.generator(), vae_tiling=estimation.vae_tiling,
    )
    return paste_estimate(crop, result)


def face_crop_inputs(model: ModelOptions, image, reference, where: str):
    """``(crop, image, reference)``: with ``--face-crop`` the crop found in ``image`` and both photos cropped to
    their own face (``crop`` None and the photos unchanged without it)."""
    crop = face_crop(model.face_crop, image, where)
    if crop is None:
        return None, image, reference
    if reference is not None:
        reference = crop_image(face_crop(model.face_crop, reference, f"{where} (reference)"), reference)
    return crop, crop_image(crop, image), reference


def paste_estimate(crop, result):
    """A depth estimate of a face crop pasted back into the full frame (NaN outside); unchanged without a crop."""
    from dataclasses import replace

    if crop is None:
        return result
    return replace(result, depth=paste_depth(crop, result.depth), uncertainty=paste_depth(crop, result.uncertainty))


class BatchedEstimates:
    """The depth estimates of a command's photos, ``batch_size`` photos per pipeline call.

    Asking for a photo's estimate (``estimates(path)``) estimates the chunk of ``batch_size`` files it
    belongs to, all at once, the first time one of them is asked for. ``load(path)`` reads a photo and
    its reference (and may refuse it); a photo that could not be loaded (or, with ``--face-crop``, has no
    face) raises its own error when its estimate is asked for, and the rest of its chunk is estimated
    without it. Every photo gets the generator of ``--seed``, as one-at-a-time estimation gives it; with
    ``--face-crop`` each photo is estimated on its face crop and pasted back, as one at a time.
    """

    def __init__(self, pipe, files: list[Path], load, model: ModelOptions, estimation: EstimationOptions,
                 batch_size: int) -> None:
        self.pipe, self.files, self.load = pipe, files, load
        self.model, self.estimation, self.batch_size = model, estimation, batch_size
        self.position = {path: i for i, path in enumerate(files)}
        self.done: dict[Path, tuple] = {}  # path -> (image, estimate) or (error,)

    def __call__(self, path: Path):
        """``(image, DepthEstimate)`` of ``path``."""
        if path not in self.done:
            start = self.position[path] - self.position[path] % self.batch_size
            self._estimate(self.files[start:start + self.batch_size])
        entry = self.done.pop(path)
        if isinstance(entry[0], Exception):
            raise entry[0]
        return entry

    def _estimate(self, chunk: list[Path]) -> None:
        from jointportrait.applications.depth_estimation import estimate_depths
        from jointportrait.errors import JointPortraitError

        loaded = []
        for path in chunk:
            try:
                image, reference = self.load(path)
                loaded.append((path, image, *face_crop_inputs(self.model, image, reference, str(path))))
            except JointPortraitError as exc:
                self.done[path] = (exc,)
        if not loaded:
            return
        e, s = self.estimation, self.estimation.sampling
        results = estimate_depths(
            self.pipe, [image for *_, image, _ in loaded], [ref for *_, ref in loaded],
            num_inference_steps=self.model.steps, ensemble_size=e.ensemble,
            processing_resolution=s.processing_resolution, resize_mode=e.resize_mode, spacing=e.timestep_spacing,
            inpaint_mode=s.inpaint_mode, generators=[self.model.generator() for _ in loaded],
            batch_size=self.batch_size, vae_tiling=e.vae_tiling,
        )
        for (path, image, crop, _, _), result in zip(loaded, results):
            self.done[path] = (image, paste_estimate(crop, result))


class DepthSource:
    """The camera-space depth of each input photo of ``relight`` and ``export``: read from ``--depth`` (a file,
    or a folder matched by name) or estimated with ``--model`` (loaded here), then placed by the camera options."""

    def __init__(self, options: DepthSourceOptions) -> None:
        self.options = options
        self.pipe = load_pipeline(options.model, options.estimation.sampling) if options.depth is None else None

    def __call__(self, path: Path, image) -> tuple[np.ndarray, np.ndarray]:
        """``(camera z, valid)`` of the photo ``path`` (a PIL ``image``)."""
        o = self.options
        if self.pipe is not None:
            estimate = estimate_with_options(self.pipe, image, o.model, o.estimation, where=str(path))
            return o.camera.camera_depth(estimate.depth, metric=False)
        file = companion_file(o.depth, path.stem, "depth", DEPTH_SUFFIXES, (f"{path.stem}_depth",))
        depth = load_user_depth(file, (image.height, image.width))
        return o.camera.camera_depth(depth, metric=o.camera.metric_depth)
