"""Depth-driven portrait animation, clip by clip with motion frames (paper Sec. 4 last paragraph, 5.5;
supplementary 7.1).

``JointPortraitVideoPipeline`` holds the joint model's parts (VAE, ``unet`` (8 or 18
input channels), ``reference_unet``, scheduler, optional CLIP image encoder) and a
diffusers ``MotionAdapter``; its folder is the joint model's folder plus
``motion_adapter/`` (``unet/`` stays a plain ``UNet2DConditionModel``). One call
turns a reference image and ``N`` driving depth maps into ``N`` frames of RGB and
depth:

1. checks the inputs,
2. encodes the reference and runs the ReferenceNet once (t = 0) into a reference bank,
3. splits the ``N`` frames into clips of ``clip_length``; for each clip
   a. the motion frames: the reference latent repeated ``motion_frames`` times for the
      first clip (the rule training uses for a clip start), the last ``motion_frames``
      clean latents of the previous clip otherwise (latents, not decoded and re-encoded
      frames: a VAE round trip drifts in colour over long videos); the ReferenceNet
      turns them into motion features once per clip,
   b. the driving depth enters as the depth-to-image task of :data:`~jointportrait.conditioning.TASKS`
      per frame: mask conditioning for an 18-channel model, latent replacement for an
      8-channel one (:mod:`~jointportrait.pipelines.denoising`),
   c. the shared denoising loop runs over the clip's frames at once,
4. decodes every frame.

The same seed gives the same video: each clip draws its noise from ``generator`` in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from jointportrait.conditioning import TASKS, build_inpainting_condition, latent_mask
from jointportrait.latent_codec import encode_depth
from jointportrait.models.joint_denoiser import is_inpainting_unet
from jointportrait.models.motion_checkpoint import load_motion_adapter
from jointportrait.models.reference_attention import ReferenceBank
from jointportrait.models.video_denoiser import MotionFeatures, VideoJointDenoiser, bank_for_frames
from jointportrait.pipelines.denoising import (
    ChannelConditioning,
    KnownDomains,
    LatentReplacement,
    denoise,
    scheduler_with_spacing,
)
from jointportrait.pipelines.pipeline_joint_portrait import INPAINT_MODES, JointPortraitPipeline
from jointportrait.pipelines.portrait_base import (
    DOMAINS,
    PortraitPipelineBase,
    ReferenceInputs,
    as_batch,
    check_reference_embedding,
)

ANIMATION_TASK = "depth_to_image"  # the driving depth is known, the RGB is generated (Sec. 4)


@dataclass
class JointPortraitVideoPipelineOutput(BaseOutput):
    """``images``: PIL list or ``(N, H, W, 3)`` float array in [0, 1]; ``depths``: ``(N, H, W)`` float32 in [0, 1]
    (relative depth, 0 = near); ``latents``: the clean ``(N, 8, h, w)`` latents; ``clip_starts``: the first
    frame of every clip (a clip boundary lies before each but the first)."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor | None
    depths: np.ndarray | torch.Tensor | None
    latents: torch.Tensor
    clip_starts: list[int]


def per_frame(maps) -> list:
    """A list with one map per frame: a list/tuple as it is, an ``(N, H, W)`` array or tensor split, one
    ``(H, W)`` map as a one-frame list."""
    if isinstance(maps, (list, tuple)):
        return list(maps)
    if isinstance(maps, (np.ndarray, torch.Tensor)) and maps.ndim == 3:
        return list(maps)
    return [maps]


def clip_bounds(num_frames: int, clip_length: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the clips that cover ``num_frames`` frames (the last one may be shorter)."""
    return [(s, min(s + clip_length, num_frames)) for s in range(0, num_frames, clip_length)]


class JointPortraitVideoPipeline(PortraitPipelineBase):
    """Reference image + driving depth maps -> a video of RGB and depth frames."""

    # no model_cpu_offload_seq: the video denoiser runs the UNets' layers directly (models/unet_walk.py),
    # past the forward hooks that model offloading moves modules with
    _optional_components = ["image_encoder"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        reference_unet: UNet2DConditionModel,
        motion_adapter: MotionAdapter,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: torch.nn.Module | None = None,
        reference_embedding: str | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(vae=vae, unet=unet, reference_unet=reference_unet, motion_adapter=motion_adapter,
                              scheduler=scheduler, image_encoder=image_encoder)
        self.register_to_config(reference_embedding=check_reference_embedding(reference_embedding, image_encoder))
        self._init_processors()
        # refuses an adapter that does not fit the denoiser's blocks
        self.video_denoiser = VideoJointDenoiser(unet, reference_unet, motion_adapter)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' loading, except that ``motion_adapter/`` of a local folder loads strictly: a missing or
        left-over motion weight is an error, not a silently random module."""
        folder = Path(pretrained_model_name_or_path)
        if "motion_adapter" not in kwargs and (folder / "motion_adapter").is_dir():
            adapter = load_motion_adapter(folder / "motion_adapter")
            dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
            if dtype is not None and dtype != adapter.dtype:
                adapter = adapter.to(dtype=dtype)
            kwargs["motion_adapter"] = adapter
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @property
    def is_inpainting_model(self) -> bool:
        return is_inpainting_unet(self.unet)

    @property
    def max_frames(self) -> int:
        """Motion frames + clip frames the motion modules' position table covers."""
        return self.video_denoiser.max_frames

    def image_pipeline(self) -> JointPortraitPipeline:
        """The image pipeline over the same modules (depth estimation of a driving video, single frames)."""
        pipe = JointPortraitPipeline(vae=self.vae, unet=self.unet, reference_unet=self.reference_unet,
                                     scheduler=self.scheduler, image_encoder=self.image_encoder)
        pipe.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return pipe

    # ------------------------------------------------------------------ inputs
    def check_inputs(self, reference_image, depth, num_inference_steps, guidance_scale, height, width,
                     clip_length, motion_frames, inpaint_mode, output_type, output_domains, latents) -> None:
        self.check_common_inputs(reference_image, height, width, num_inference_steps, guidance_scale, 1,
                                 output_type, output_domains, None)
        if len(as_batch(reference_image)) != 1:
            raise ValueError("`reference_image` must be one image: a video has one identity")
        if depth is None or len(depth) == 0:
            raise ValueError("`depth` must hold one driving depth map per frame")
        if not isinstance(clip_length, int) or clip_length < 1:
            raise ValueError(f"`clip_length` must be a positive integer, got {clip_length!r}")
        if not isinstance(motion_frames, int) or motion_frames < 0:
            raise ValueError(f"`motion_frames` must be a non-negative integer, got {motion_frames!r}")
        if motion_frames > clip_length and len(depth) > clip_length:
            raise ValueError(f"`motion_frames` ({motion_frames}) must not exceed `clip_length` ({clip_length}): "
                             "they are the previous clip's last frames")
        if clip_length + motion_frames > self.max_frames:
            raise ValueError(f"`clip_length` + `motion_frames` = {clip_length + motion_frames} exceeds the motion "
                             f"modules' {self.max_frames} positions")
        if inpaint_mode not in INPAINT_MODES:
            raise ValueError(f"`inpaint_mode` must be one of {INPAINT_MODES}, got {inpaint_mode!r}")
        if inpaint_mode == "conditioning" and not self.is_inpainting_model:
            raise ValueError("`inpaint_mode='conditioning'` needs an 18-channel (stage-2) denoiser")
        if latents is not None and latents.shape[0] != len(depth):
            raise ValueError(f"`latents` must have one row per frame ({len(depth)}), got {latents.shape[0]}")

    # ------------------------------------------------------------ clip inputs
    def reference_rows(self, refs: ReferenceInputs, do_cfg: bool) -> tuple[ReferenceBank, torch.Tensor]:
        """The reference bank and cross-attention states per clip row: one row, or ``[uncond; cond]``."""
        bank = self.video_denoiser.encode_reference(refs.latents.to(self.unet.dtype), refs.embeddings)  # 1 row
        return self.bank_rows(bank, refs, do_cfg), self.sample_embeddings(refs, do_cfg)

    def motion_features(self, motion_latents: torch.Tensor | None, refs: ReferenceInputs, num_motion: int,
                        do_cfg: bool) -> MotionFeatures | None:
        """Motion features of one clip from ``motion_latents`` ``(n, 4, h, w)`` (None: the reference repeated,
        the first-clip rule); the same rows for both halves of guidance."""
        if num_motion == 0:
            return None
        if motion_latents is None:
            motion_latents = refs.latents.expand(num_motion, -1, -1, -1)  # (n, 4, h, w)
        features = self.video_denoiser.encode_motion_frames(motion_latents.to(self.unet.dtype), refs.embeddings,
                                                            num_motion)
        if do_cfg:
            features = features.select(torch.zeros(2, dtype=torch.long, device=motion_latents.device))
        return features

    def clip_known_domains(self, depth_n: torch.Tensor, mode: str, scheduler, generator, do_cfg: bool
                           ) -> KnownDomains:
        """The driving depth of a clip's frames ``(F, 1, H, W)`` (normalised) as the known domain of the
        depth-to-image task: mask conditioning or latent replacement."""
        frames, _, height, width = depth_n.shape
        rgb_mask, depth_mask = TASKS[ANIMATION_TASK].masks(like=depth_n.new_zeros(frames, 1, height, width))
        blank = torch.zeros(frames, 3, height, width, device=depth_n.device, dtype=self.vae.dtype)
        depth_in = depth_n.to(self.vae.dtype)
        dtype = self.unet.dtype
        if mode == "conditioning":
            condition = build_inpainting_condition(self.vae, blank, depth_in, rgb_mask, depth_mask)
            return ChannelConditioning(condition.as_channels().to(dtype), guided_rows=do_cfg)  # (F, 10, h, w)
        z_depth = encode_depth(self.vae, depth_in)  # (F, 4, h, w)
        c = self.video_denoiser.latent_channels
        hw = z_depth.shape[-2:]
        known = torch.cat([torch.zeros_like(z_depth), z_depth], 1).to(dtype)  # (F, 8, h, w)
        gen_mask = torch.cat([latent_mask(rgb_mask, hw).expand(-1, c, -1, -1),
                              latent_mask(depth_mask, hw).expand(-1, c, -1, -1)], 1).to(device=known.device,
                                                                                        dtype=dtype)
        noise = randn_tensor(known.shape, generator=generator, device=self._execution_device, dtype=dtype)
        return LatentReplacement(known, gen_mask, noise, scheduler, scheduler.timesteps)

    # -------------------------------------------------------------------- call
    @torch.no_grad()
    def __call__(
        self,
        reference_image,
        depth,
        depth_valid=None,
        clip_length: int = 14,
        motion_frames: int = 4,
        independent_clips: bool = False,
        num_inference_steps: int = 25,
        guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        inpaint_mode: str = "auto",
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        timestep_spacing: str | None = None,
        output_domains: tuple[str, ...] = DOMAINS,
        output_type: str = "np",
        on_clip_end: Callable[[int, int], None] | None = None,
        return_dict: bool = True,
    ) -> JointPortraitVideoPipelineOutput | tuple:
        """Animate ``reference_image`` with one driving depth map per frame.

        Args:
            reference_image: the identity (PIL image, (H, W, 3) array or (3, H, W) tensor in [0, 1]).
            depth: ``N`` raw depth maps (H, W), larger = farther (a list, or an ``(N, H, W)`` array / tensor).
            depth_valid: optional ``N`` boolean masks of valid depth pixels (default: finite values).
            clip_length: frames generated at once (the paper: 14).
            motion_frames: frames of the previous clip that every clip attends to (the paper: 4; 0 = none).
            independent_clips: every clip takes the first-clip motion frames (the reference repeated): clips
                that know nothing of each other, for comparison.
            num_inference_steps, guidance_scale, timestep_spacing: as the image pipeline.
            height, width: output size (default: the UNet's native size).
            inpaint_mode: "auto", "conditioning" (18-channel model) or "replacement".
            generator: one torch generator; the clips draw from it in turn.
            latents: initial noise ``(N, 8, h, w)``.
            output_domains, output_type: as the image pipeline (``"np"`` by default).
            on_clip_end: called with ``(clip index, frames done)`` after each clip.
        """
        # 1. Check inputs
        depths = per_frame(depth)
        self.check_inputs(reference_image, depths, num_inference_steps, guidance_scale, height, width,
                          clip_length, motion_frames, inpaint_mode, output_type, output_domains, latents)
        valids = per_frame(depth_valid) if depth_valid is not None else None
        if valids is not None and len(valids) != len(depths):
            raise ValueError(f"`depth_valid` must have one mask per frame ({len(depths)}), got {len(valids)}")
        height, width = self.resolve_size(height, width)
        do_cfg = guidance_scale > 1.0
        mode = inpaint_mode if inpaint_mode != "auto" else (
            "conditioning" if self.is_inpainting_model else "replacement")

        # 2. The reference: latents, embedding, the ReferenceNet once at t = 0
        refs = self.encode_references(reference_image, height, width, 1)
        bank, ehs = self.reference_rows(refs, do_cfg)  # rows: 1, or [uncond; cond]
        frame_banks: dict[int, ReferenceBank] = {}  # per clip length: readers cache their key/value projections

        # 3. Clip by clip
        scheduler = scheduler_with_spacing(self.scheduler, timestep_spacing)
        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        c = self.video_denoiser.latent_channels
        bounds = clip_bounds(len(depths), clip_length)
        clean: list[torch.Tensor] = []
        for k, (start, end) in enumerate(bounds):
            frames = end - start
            scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
            noise = None if latents is None else latents[start:end]
            z = self.initial_latents((frames, 2 * c, *latent_hw), scheduler, generator, noise)  # (F, 8, h, w)
            depth_n = self.prepare_depth(depths[start:end], None if valids is None else valids[start:end],
                                         height, width)  # (F, 1, H, W)
            known = self.clip_known_domains(depth_n, mode, scheduler, generator, do_cfg)
            previous = None if k == 0 or independent_clips else clean[-1][-motion_frames:, :c]  # (n, 4, h, w)
            motion = self.motion_features(previous, refs, motion_frames, do_cfg)
            if frames not in frame_banks:
                frame_banks[frames] = bank_for_frames(bank, frames)
            clip_bank = frame_banks[frames]

            def predict(model_in: torch.Tensor, t: torch.Tensor, frames=frames, clip_bank=clip_bank,
                        motion=motion) -> torch.Tensor:
                return self.video_denoiser(model_in, t, ehs, num_frames=frames, reference_bank=clip_bank,
                                           motion=motion)  # (B*F, 8, h, w)

            z = denoise(scheduler, z, predict, known, guidance_scale, generator, self.progress_bar)
            clean.append(z)
            if on_clip_end is not None:
                on_clip_end(k, end)
        all_latents = torch.cat(clean)  # (N, 8, h, w)

        # 4. Decode, a clip at a time
        if output_type == "latent":
            out = self.decode(all_latents[:, :c], all_latents[:, c:], output_domains, output_type)
        else:
            parts = [self.decode(z[:, :c], z[:, c:], output_domains, output_type) for z in clean]
            out = _join(parts, output_type)
        self.maybe_free_model_hooks()
        starts = [s for s, _ in bounds]
        if not return_dict:
            return out.images, out.depths, all_latents, starts
        return JointPortraitVideoPipelineOutput(out.images, out.depths, all_latents, starts)


def _join(parts, output_type: str):
    """One output from per-clip decodes."""
    first = parts[0]

    def cat(values):
        if values[0] is None:
            return None
        if output_type == "pil":
            return [v for part in values for v in part]
        return torch.cat(values) if torch.is_tensor(values[0]) else np.concatenate(values)

    return type(first)(images=cat([p.images for p in parts]), depths=cat([p.depths for p in parts]))
