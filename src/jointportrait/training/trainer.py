"""One trainer for every stage, on accelerate (paper Sec. 3.2, 4, 5.1; supplementary 7.2).

What a stage trains, which inputs it builds and which data it reads is
configuration (:mod:`jointportrait.training.config`): stage 1 trains the
8-channel denoiser and the ReferenceNet with the joint loss; stage 2 starts
from a stage-1 run, widens the denoiser to 18 channels and adds the masks of
:class:`~jointportrait.training.masks.MaskSampler` to every batch. The VAE and
the image encoder are frozen and cast to the weight dtype.

Determinism: the data order is a function of the micro-batch counter
(:class:`~jointportrait.training.data.StepBatchSampler`) and every micro-batch
draws its noise, timesteps, reference dropout and masks from a generator seeded
by ``(seed, step, micro-batch, rank)``. A resumed run therefore repeats the
uninterrupted run exactly; accelerate's own RNG states are saved as well.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from jointportrait.conditioning import STAGE2_CHANNELS
from jointportrait.errors import JointPortraitError, TrainingStopped
from jointportrait.training.checkpoint import TrainState, load_checkpoint, remove_incomplete, save_checkpoint
from jointportrait.training.config import ConfigError, RunConfig, save_config
from jointportrait.training.data import StepBatchSampler, build_datasets
from jointportrait.training.latent_cache import LatentCache
from jointportrait.training.masks import MaskSampler
from jointportrait.training.models import MODEL_KINDS, Components
from jointportrait.training.run_lock import run_lock
from jointportrait.training.stop_signals import StopRequest, stop_on_signals

logger = logging.getLogger(__name__)

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class NonFiniteLossError(JointPortraitError):
    """The loss became NaN or inf (``train.nonfinite_loss: stop``)."""


@dataclass
class TrainResult:
    final_dir: Path
    state: TrainState
    losses: list[float]  # mean loss of every optimizer step run by this call
    world_size: int
    model: torch.nn.Module  # this process's trained module, unwrapped (not the EMA weights)
    is_main_process: bool


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """Seed of the generator of one micro-batch; distinct for every (step, micro-batch, rank)."""
    return (((seed * 1_000_003 + step) * 1_009 + micro) * 9_973 + rank) % (2**63 - 1)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _out_of_time(accelerator, deadline: float) -> bool:
    """True on every process once the main process is past ``deadline`` (ranks stop at the same step)."""
    flag = torch.tensor([float(time.monotonic() > deadline)], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum") > 0)


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _make_accelerator(cfg: RunConfig, output_dir: Path):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    # No unused parameters: ReferenceNet parts that feed no reader are frozen, and a micro-batch whose
    # samples all drop their reference still touches the reference features (with a zero gradient).
    ddp = DistributedDataParallelKwargs(find_unused_parameters=False)
    return Accelerator(
        kwargs_handlers=[ddp],
        mixed_precision=cfg.train.mixed_precision,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # CPU-only machines: without cpu=True a multi-process launch runs independent jobs (ENVIRONMENT.md)
        cpu=not torch.cuda.is_available(),
        # the LR schedule is a function of the optimizer step, not of steps x processes
        step_scheduler_with_optimizer=False,
    )


def _prepare_components(cfg: RunConfig, components: Components, weight_dtype: torch.dtype, device) -> None:
    """Freeze and cast the VAE and image encoder; freeze ReferenceNet parts that feed no reader."""
    model = components.model
    for frozen in (components.vae, components.image_encoder):
        if frozen is not None:
            frozen.requires_grad_(False).eval().to(device)
            if next(frozen.parameters()).dtype != weight_dtype:  # diffusers warns on a no-op dtype cast
                frozen.to(dtype=weight_dtype)
    model.train()
    if cfg.model.freeze_unread_reference and hasattr(model, "freeze_reference_parameters_without_reader"):
        names = model.freeze_reference_parameters_without_reader()
        logger.info("froze %d ReferenceNet tensors that feed no reader", len(names))
    if cfg.train.gradient_checkpointing:
        for name in ("unet", "reference_unet"):
            if hasattr(model, name):
                getattr(model, name).enable_gradient_checkpointing()


def train(cfg: RunConfig, output_dir: str | Path, resume_from: Path | None = None,
          dataset: Dataset | None = None, val_dataset: Dataset | None = None) -> TrainResult:
    """Run (or resume) training until ``train.max_steps``; export ``output_dir/final``.

    ``dataset``/``val_dataset`` default to the folders of ``cfg.data`` (dataset
    contract); passing them lets tests and notebooks train on in-memory data.
    The run folder is locked for the whole run (:mod:`~jointportrait.training.run_lock`);
    SIGTERM / SIGINT write a checkpoint and raise :class:`TrainingStopped`
    (:mod:`~jointportrait.training.stop_signals`).
    """
    with run_lock(output_dir), stop_on_signals() as stop:
        return _train(cfg, output_dir, resume_from, dataset, val_dataset, stop)


def _train(cfg: RunConfig, output_dir: str | Path, resume_from: Path | None, dataset: Dataset | None,
           val_dataset: Dataset | None, stop: StopRequest) -> TrainResult:
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    if cfg.model.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind: unknown {cfg.model.kind!r} (known: {', '.join(MODEL_KINDS)})")
    kind = MODEL_KINDS[cfg.model.kind]
    # 1. Data first: a wrong path fails before anything is written or loaded
    if dataset is None:
        dataset = build_datasets(cfg.dataset_sources(), cfg.data.resolution, cfg.data.split, cfg.train.seed)
    if val_dataset is None and kind.validates and cfg.validation.every > 0:
        try:
            val_dataset = build_datasets(cfg.dataset_sources(), cfg.data.resolution, cfg.data.val_split,
                                         cfg.validation.seed, train=False)
        except JointPortraitError:
            logger.warning("no '%s' split; validating on training samples", cfg.data.val_split)
            val_dataset = dataset

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = _make_accelerator(cfg, output_dir)
    if accelerator.is_main_process:
        save_config(cfg, output_dir / "config.yaml")
        remove_incomplete(output_dir)
    weight_dtype = WEIGHT_DTYPES[cfg.train.mixed_precision]

    # 2. Models: the trained module, and frozen VAE / image encoder in the weight dtype
    components = kind.build(cfg)
    if cfg.model.prediction_type is not None and components.scheduler is not None:
        # the exported scheduler must interpret the model's output as it was trained
        components.scheduler = type(components.scheduler).from_config(
            components.scheduler.config, prediction_type=cfg.model.prediction_type)
    export_frozen = (components.vae, components.image_encoder)
    if weight_dtype != torch.float32:  # export the frozen parts in their original precision
        export_frozen = tuple(copy.deepcopy(m) if m is not None else None for m in export_frozen)
    _prepare_components(cfg, components, weight_dtype, accelerator.device)
    if cfg.data.cache_latents:
        dataset = LatentCache(dataset, components.vae)
    model = components.model
    params = _trainable(model)
    optimizer = torch.optim.AdamW(
        params, lr=cfg.optim.learning_rate, betas=(cfg.optim.adam_beta1, cfg.optim.adam_beta2),
        eps=cfg.optim.adam_epsilon, weight_decay=cfg.optim.weight_decay,
    )
    lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, optimizer, num_warmup_steps=cfg.optim.lr_warmup_steps,
                                 num_training_steps=cfg.train.max_steps)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = None
    if cfg.train.ema.enabled:
        ema = EMAModel(_trainable(accelerator.unwrap_model(model)), decay=cfg.train.ema.decay,
                       update_after_step=cfg.train.ema.update_after_step)
        ema.to(accelerator.device)
    state = TrainState()
    states = {"train_state": state} if ema is None else {"train_state": state, "ema": ema}  # saved without pickle
    if resume_from is not None:
        load_checkpoint(accelerator, resume_from, states)
        logger.info("resumed from %s at step %d", resume_from, state.step)

    # 3. Sampler: the data position is the micro-batch counter
    accum = cfg.train.gradient_accumulation_steps
    sampler = StepBatchSampler(len(dataset), cfg.train.batch_size, cfg.train.seed, rank=accelerator.process_index,
                               num_replicas=accelerator.num_processes, start=state.micro_batches)
    loader = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                             persistent_workers=cfg.data.num_workers > 0))
    mask_sampler = None
    unet = getattr(accelerator.unwrap_model(model), "unet", None)
    if unet is not None and unet.config.in_channels == STAGE2_CHANNELS:
        mask_sampler = MaskSampler(cfg.masks.tasks, cfg.masks.spatial)

    # 4. The loop
    if accelerator.is_main_process:
        accelerator.init_trackers("train")
        logger.info("effective batch %d = %d per process x %d accumulation x %d processes",
                    cfg.train.batch_size * accum * accelerator.num_processes, cfg.train.batch_size, accum,
                    accelerator.num_processes)
    progress = tqdm(total=cfg.train.max_steps, initial=state.step, desc="train",
                    disable=not accelerator.is_local_main_process)
    losses: list[float] = []
    deadline = None if cfg.train.max_minutes is None else time.monotonic() + 60.0 * cfg.train.max_minutes
    while state.step < cfg.train.max_steps:
        if deadline is not None and _out_of_time(accelerator, deadline):
            logger.info("train.max_minutes reached at step %d: stopping early", state.step)
            save_checkpoint(accelerator, output_dir, state.step, cfg.train.checkpoints_total_limit, states)
            break
        signum = stop.requested(accelerator)
        if signum:  # SIGTERM / SIGINT: keep every finished step, then stop
            progress.close()
            if state.step > 0 and state.step % cfg.train.checkpoint_every:
                save_checkpoint(accelerator, output_dir, state.step, cfg.train.checkpoints_total_limit, states)
            accelerator.end_training()
            raise TrainingStopped(f"stopped by {signal.Signals(signum).name} at step {state.step}: "
                                  + (f"checkpoint-{state.step} is saved; continue with --resume latest"
                                     if state.step else "stopped before the first step"), signum)
        start = time.perf_counter()
        totals = torch.zeros(3, device=accelerator.device)  # loss, loss_rgb, loss_depth summed over micro-batches
        for micro in range(accum):
            batch = next(loader)
            generator = torch.Generator().manual_seed(
                step_seed(cfg.train.seed, state.step, micro, accelerator.process_index))
            if mask_sampler is not None:
                masks, _ = mask_sampler.sample(batch, generator)
                batch.update(masks)
            batch = _to_device(batch, accelerator.device)
            # gradients are all-reduced only on the last micro-batch
            sync = accelerator.no_sync(model) if micro < accum - 1 else contextlib.nullcontext()
            with sync, accelerator.autocast():
                out = kind.loss(model, components.vae, components.scheduler, batch,
                                image_encoder=components.image_encoder,
                                reference_dropout=cfg.train.reference_dropout,
                                prediction_type=cfg.model.prediction_type, generator=generator)
                accelerator.backward(out.loss / accum)
            totals += torch.stack([out.loss.detach(), out.loss_rgb.detach(), out.loss_depth.detach()]).float() / accum
            state.micro_batches += 1
        totals = accelerator.reduce(totals, reduction="mean")
        loss = float(totals[0])
        if not math.isfinite(loss):
            if cfg.train.nonfinite_loss == "stop":
                progress.close()
                raise NonFiniteLossError(f"non-finite loss ({loss}) at step {state.step + 1}; "
                                         "set train.nonfinite_loss: skip to skip such steps")
            logger.warning("non-finite loss (%s) at step %d: step skipped", loss, state.step + 1)
            optimizer.zero_grad(set_to_none=True)
            state.skipped_steps += 1
        else:
            if cfg.optim.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, cfg.optim.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(_trainable(accelerator.unwrap_model(model)))
        lr_scheduler.step()
        state.step += 1
        losses.append(loss)
        elapsed = time.perf_counter() - start
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
        if state.step % cfg.train.log_every == 0 or state.step == cfg.train.max_steps:
            samples = cfg.train.batch_size * accum * accelerator.num_processes
            accelerator.log({"loss": loss, "loss_rgb": float(totals[1]), "loss_depth": float(totals[2]),
                             "lr": lr_scheduler.get_last_lr()[0], "samples_per_second": samples / elapsed},
                            step=state.step)
        if state.step % cfg.train.checkpoint_every == 0 or state.step == cfg.train.max_steps:
            save_checkpoint(accelerator, output_dir, state.step, cfg.train.checkpoints_total_limit, states)
        if kind.validates and cfg.validation.every and state.step % cfg.validation.every == 0:
            _validate(accelerator, cfg, kind, components, model, ema, val_dataset, state.step, output_dir)
    progress.close()

    # 5. Export (EMA weights when EMA is on) in the layout JointPortraitPipeline.from_pretrained loads
    final_dir = output_dir / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export_model = copy.deepcopy(accelerator.unwrap_model(model)).float()
        if ema is not None:
            ema.copy_to(_trainable(export_model))
        frozen = Components(export_model, export_frozen[0], components.scheduler, export_frozen[1])
        if weight_dtype == torch.float32 and frozen.vae is not None:
            frozen.vae.float()
        kind.export(frozen, export_model.cpu(), final_dir)
        logger.info("exported %s", final_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(final_dir, state, losses, accelerator.num_processes, accelerator.unwrap_model(model),
                       accelerator.is_main_process)


def _validate(accelerator, cfg: RunConfig, kind, components: Components, model, ema, val_dataset, step: int,
              output_dir: Path) -> None:
    """Sample the validation grid on the main process, with the EMA weights when EMA is on."""
    from jointportrait.pipelines.pipeline_joint_portrait import JointPortraitPipeline
    from jointportrait.training.validation import run_validation

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        inner = accelerator.unwrap_model(model)
        if ema is not None:
            ema.store(_trainable(inner))
            ema.copy_to(_trainable(inner))
        inner.eval()
        try:
            pipe = JointPortraitPipeline(vae=components.vae, unet=inner.unet, reference_unet=inner.reference_unet,
                                         scheduler=components.scheduler, image_encoder=components.image_encoder)
            pipe.set_progress_bar_config(disable=True)
            n = min(cfg.validation.num_references, len(val_dataset))
            samples = [val_dataset[i] for i in range(n)]
            tracker = accelerator.get_tracker("tensorboard", unwrap=True)
            with accelerator.autocast():
                run_validation(pipe, samples, step, output_dir, cfg.validation.num_inference_steps,
                               cfg.validation.guidance_scale, cfg.validation.seed, tensorboard_writer=tracker)
        finally:
            # the pipeline re-installed the attention processors on the same UNets; the model keeps working
            inner.train()
            if ema is not None:
                ema.restore(_trainable(inner))
    accelerator.wait_for_everyone()
