"""One trainer for every stage, on accelerate (paper Sec. 3.2, 4, 5.1; supplementary 7.2).

What a stage trains, which inputs it builds and which loss it uses is a
:class:`~jointportrait.training.stages.TrainingStage` chosen by ``model.kind``
(:data:`~jointportrait.training.stages.STAGES`): stage 1 trains the 8-channel
denoiser and the ReferenceNet with the joint loss; stage 2 starts from a
stage-1 run, widens the denoiser to 18 channels and adds masks to every batch;
the VAE stage and the baselines are stages too. The loop below knows only the
stage's protocol: the module to optimise, batch preparation, the loss, the
validation pipeline and the export.

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
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from jointportrait.data.datasets import DrawDataset
from jointportrait.errors import JointPortraitError, TrainingStopped
from jointportrait.training.checkpoint import TrainState, load_checkpoint, remove_incomplete, save_checkpoint
from jointportrait.training.config import RunConfig, save_config
from jointportrait.training.data import StepBatchSampler
from jointportrait.training.latent_cache import cache_latents
from jointportrait.training.run_lock import run_lock
from jointportrait.training.stages import STAGES, TrainingStage
from jointportrait.training.stop_signals import StopRequest, stop_on_signals
from jointportrait.training.validation import run_validation

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


def _make_accelerator(cfg: RunConfig, output_dir: Path) -> Accelerator:
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
    stage_cls = STAGES[cfg.model.kind]  # the kind was checked when the config loaded
    # 1. Data first: a wrong path fails before anything is written or loaded
    if dataset is None:
        dataset = stage_cls.dataset(cfg, cfg.data.split, cfg.train.seed)
    if val_dataset is None and stage_cls.validates and cfg.validation.every > 0:
        try:
            val_dataset = stage_cls.dataset(cfg, cfg.data.val_split, cfg.validation.seed, train=False)
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

    # 2. The stage: its trained module, and its frozen parts (VAE, image encoder) in the weight dtype
    stage = stage_cls(cfg)
    stage.prepare(accelerator.device, weight_dtype)
    if cfg.data.cache_latents:
        dataset = cache_latents(dataset, stage.latent_vae)
    model = stage.model
    params = stage.trainable_parameters()
    optimizer = torch.optim.AdamW(
        params, lr=cfg.optim.learning_rate, betas=(cfg.optim.adam_beta1, cfg.optim.adam_beta2),
        eps=cfg.optim.adam_epsilon, weight_decay=cfg.optim.weight_decay,
    )
    lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, optimizer, num_warmup_steps=cfg.optim.lr_warmup_steps,
                                 num_training_steps=cfg.train.max_steps)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = None
    if cfg.train.ema.enabled:
        ema = EMAModel(stage.trainable_parameters(accelerator.unwrap_model(model)), decay=cfg.train.ema.decay,
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
                               num_replicas=accelerator.num_processes, start=state.micro_batches,
                               draws=isinstance(dataset, DrawDataset))  # references and crops drawn anew
    loader = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                             persistent_workers=cfg.data.num_workers > 0))

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
    last_step = min(cfg.train.max_steps, cfg.train.stop_at_step or cfg.train.max_steps)
    while state.step < last_step:
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
                                     if state.step else "nothing to save yet"), signum)
        start = time.perf_counter()
        totals = torch.zeros(3, device=accelerator.device)  # loss, loss_rgb, loss_depth summed over micro-batches
        for micro in range(accum):
            batch = next(loader)
            generator = torch.Generator().manual_seed(
                step_seed(cfg.train.seed, state.step, micro, accelerator.process_index))
            batch = _to_device(stage.prepare_batch(batch, generator), accelerator.device)
            # gradients are all-reduced only on the last micro-batch
            sync = accelerator.no_sync(model) if micro < accum - 1 else contextlib.nullcontext()
            with sync, accelerator.autocast():
                out = stage.loss(model, batch, generator)
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
                ema.step(stage.trainable_parameters(accelerator.unwrap_model(model)))
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
        if state.step % cfg.train.checkpoint_every == 0 or state.step == last_step:
            save_checkpoint(accelerator, output_dir, state.step, cfg.train.checkpoints_total_limit, states)
        if stage.validates and cfg.validation.every and state.step % cfg.validation.every == 0:
            _validate(accelerator, cfg, stage, model, ema, val_dataset, state.step, output_dir)
    progress.close()

    # 5. Export (EMA weights when EMA is on) in the layout the stage's pipeline loads
    final_dir = output_dir / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export_model = copy.deepcopy(accelerator.unwrap_model(model)).float()
        if ema is not None:
            ema.copy_to(stage.trainable_parameters(export_model))
        stage.export(export_model.cpu(), final_dir)
        logger.info("exported %s", final_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(final_dir, state, losses, accelerator.num_processes, accelerator.unwrap_model(model),
                       accelerator.is_main_process)


def _validate(accelerator, cfg: RunConfig, stage: TrainingStage, model, ema, val_dataset, step: int,
              output_dir: Path) -> None:
    """Sample the validation grid on the main process, with the EMA weights when EMA is on."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        inner = accelerator.unwrap_model(model)
        if ema is not None:
            ema.store(stage.trainable_parameters(inner))
            ema.copy_to(stage.trainable_parameters(inner))
        inner.eval()
        try:
            pipe = stage.pipeline(inner)
            pipe.set_progress_bar_config(disable=True)
            n = min(cfg.validation.num_references, len(val_dataset))
            samples = [val_dataset[i] for i in range(n)]
            tracker = accelerator.get_tracker("tensorboard", unwrap=True)
            with accelerator.autocast():
                run_validation(pipe, samples, step, output_dir, cfg.validation.num_inference_steps,
                               cfg.validation.guidance_scale, cfg.validation.seed, tensorboard_writer=tracker,
                               grid_fn=stage.validation_grid)
        finally:
            inner.train()
            if ema is not None:
                ema.restore(stage.trainable_parameters(inner))
    accelerator.wait_for_everyone()
