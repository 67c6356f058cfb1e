"""``jointportrait track --clips DIR``: a folder of clips tracked at dataset scale (paper Sec. 5.1: hours of
in-the-wild video become pseudo ground-truth depth), and ``track --merge``.

- ``--shard i/n``: this job tracks the clips at positions ``i, i+n, ...`` of the name-sorted list
  (:mod:`jointportrait.tracking.shards`), so ``n`` jobs of any scheduler cover the folder without talking to
  each other;
- ``--workers N``: ``N`` processes (spawned, not forked) track clips at once, each with ``--threads`` torch
  threads (default: the usable cores / ``N``) so that they do not oversubscribe the machine;
- every clip is written into a partial folder and renamed into place with its done marker
  (:mod:`jointportrait.tracking.dataset_folder`): a killed or restarted shard skips the finished clips;
- a clip that cannot be tracked (no face, a diverged fit, a bad file) is recorded in ``failed/`` and the
  others go on; an unexpected error stops nothing either, but the shard then exits with status 1 without
  writing its shard manifest, so a rerun tracks only what is missing;
- a finished shard writes ``shards/shard-IIII-of-NNNN.json``; ``--merge`` (automatic for an unsharded run)
  joins them into ``OUT/manifest.jsonl``, the file the training data loaders read.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jointportrait.cli.track_pipeline import TrackOptions, landmark_source, resolve_device, track_frames

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipJob:
    """One clip for a worker: where it is, where it goes and how to track it."""

    name: str
    video: str
    landmarks: str | None
    out: str
    options: TrackOptions
    overwrite: bool


@dataclass
class ClipOutcome:
    """What became of a clip: ``done``, ``failed`` (recorded, skipped on resume) or ``error`` (unexpected, not
    recorded: tracked again by the next run); ``messages`` are the lines ``track --video`` would print."""

    name: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None
    messages: tuple[str, ...] = ()


def usable_cores() -> int:
    """The cores this process may run on (a SLURM or container CPU set, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """Bound torch's and OpenCV's thread pools (each worker process calls it once)."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def init_worker(threads: int) -> None:
    """Initializer of a worker process: its thread budget, and warnings only (the parent reports)."""
    set_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def track_one_clip(job: ClipJob) -> ClipOutcome:
    """Track one clip into ``OUT/clips/<name>/`` (a worker's task; never raises)."""
    from jointportrait.cli.detection import clip_landmarks
    from jointportrait.errors import JointPortraitError, MissingDependencyError
    from jointportrait.tracking.dataset_folder import publish_clip, record_failure, start_partial
    from jointportrait.tracking.video import read_frames

    out, start, messages = Path(job.out), time.perf_counter(), []
    landmarks = None if job.landmarks is None else Path(job.landmarks)
    partial = None
    try:
        partial = start_partial(out, job.name)
        frames, fps = read_frames(job.video)
        lmk = clip_landmarks(job.options.detection_args(landmarks), frames, fps)
        summary = track_frames(job.options, frames, fps, lmk, partial, name=job.video, subject=job.name,
                               clip=job.name, landmark_source=landmark_source(job.options, landmarks),
                               overwrite=False, say=messages.append, progress=False)
        seconds = time.perf_counter() - start
        publish_clip(out, job.name, partial, {"clip": job.name, "video": job.video, **summary,
                                              "seconds": round(seconds, 3), "device": job.options.device,
                                              "options": job.options.recorded()})
        return ClipOutcome(job.name, "done", summary["frames"], seconds, messages=tuple(messages))
    except MissingDependencyError as exc:  # the machine's problem, not the clip's: not recorded as failed
        return ClipOutcome(job.name, "error", seconds=time.perf_counter() - start, reason=str(exc),
                           messages=tuple(messages))
    except JointPortraitError as exc:
        record_failure(out, job.name, str(exc))
        return ClipOutcome(job.name, "failed", seconds=time.perf_counter() - start, reason=str(exc),
                           messages=tuple(messages))
    except Exception as exc:  # one clip's bug or lack of memory must not lose the other clips
        logger.info("clip %s stopped unexpectedly", job.name, exc_info=True)
        return ClipOutcome(job.name, "error", seconds=time.perf_counter() - start,
                           reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:300], messages=tuple(messages))
    finally:
        if partial is not None and partial.exists():  # not published: never leave a half-written clip behind
            shutil.rmtree(partial, ignore_errors=True)


def run_jobs(jobs: list[ClipJob], workers: int, threads: int):
    """Yield the :class:`ClipOutcome` of every job as it finishes: in this process for one worker, else in a
    pool of spawned processes (CUDA and torch's thread pools do not survive a fork)."""
    if workers == 1 or len(jobs) <= 1:
        set_threads(threads)
        for job in jobs:
            yield track_one_clip(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=init_worker,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(track_one_clip, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def run_clips(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from jointportrait.errors import InputError
    from jointportrait.faces.backend import dlib_module, model_file
    from jointportrait.tracking.dataset_folder import (
        ShardClip,
        check_dataset_folder,
        clip_dir,
        is_done,
        read_done,
        read_failure,
        write_shard_manifest,
    )
    from jointportrait.tracking.shards import Shard, list_clips, parse_shard, shard_clips

    if args.subject is not None or args.clip is not None:
        raise InputError("--subject and --clip name one clip; with --clips every clip is named after its file "
                         "or folder")
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    shard = parse_shard(args.shard) if args.shard is not None else Shard(0, 1)
    device = resolve_device(args.device)
    threads = args.threads or max(1, usable_cores() // args.workers)
    check_dataset_folder(args.out)
    clips = list_clips(args.clips, args.landmarks)
    if args.landmarks is None:  # a missing faces extra stops here, not once per clip
        dlib_module()
        model_file("landmarks68")
    mine = shard_clips(clips, shard)
    options = TrackOptions.from_args(args, device)
    outcomes: dict[str, ShardClip] = {}
    todo = []
    for clip in mine:
        reason = read_failure(args.out, clip.name)
        if is_done(args.out, clip.name) and not args.overwrite:
            done = read_done(args.out, clip.name)
            if done.get("options") != options.recorded():
                raise InputError(f"{clip_dir(args.out, clip.name)}: tracked with other options "
                                 f"({_difference(done.get('options'), options.recorded())}); use the same options "
                                 "to resume, or --overwrite to track every clip again")
            outcomes[clip.name] = ShardClip(clip.name, "done", frames=int(done.get("frames", 0)))
        elif reason is not None and not (args.retry_failed or args.overwrite):
            outcomes[clip.name] = ShardClip(clip.name, "failed", reason=reason)
        else:
            todo.append(ClipJob(clip.name, str(clip.video), None if clip.landmarks is None else str(clip.landmarks),
                                str(args.out), options, args.overwrite))
    skipped = len(mine) - len(todo)
    print(f"shard {shard}: {len(mine)} of {len(clips)} clips, {len(todo)} to track"
          + (f" ({skipped} already done or failed)" if skipped else "")
          + f"; {min(args.workers, max(len(todo), 1))} worker(s) x {threads} thread(s) on {device}")
    errors = []
    with tqdm(total=len(todo), desc=f"shard {shard}", unit="clip", disable=len(todo) < 2) as bar:
        for outcome in run_jobs(todo, args.workers, threads):
            for message in outcome.messages:
                logger.info("%s: %s", outcome.name, message)
            if outcome.status == "done":
                outcomes[outcome.name] = ShardClip(outcome.name, "done", frames=outcome.frames)
                tqdm.write(f"{outcome.name}: {outcome.frames} frames in {outcome.seconds:.1f} s")
            elif outcome.status == "failed":
                outcomes[outcome.name] = ShardClip(outcome.name, "failed", reason=outcome.reason)
                tqdm.write(f"{outcome.name}: failed: {outcome.reason}", file=sys.stderr)
            else:
                errors.append(outcome)
                tqdm.write(f"{outcome.name}: unexpected {outcome.reason}", file=sys.stderr)
            bar.update(1)
    done = sum(c.status == "done" for c in outcomes.values())
    failed = [c.name for c in outcomes.values() if c.status == "failed"]
    if errors:
        print(f"error: {len(errors)} clip(s) of shard {shard} stopped unexpectedly ({errors[0].name}: "
              f"{errors[0].reason}); rerun the shard to track them (done clips are skipped)", file=sys.stderr)
        return 1
    manifest = write_shard_manifest(args.out, shard, [c.name for c in clips], outcomes.values())
    print(f"shard {shard}: {done} clips done, {len(failed)} failed"
          + (f" ({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''})" if failed else "")
          + f"; wrote {manifest}")
    if shard.count == 1:
        return _merge(args.out)
    return 0


def _difference(before: dict | None, now: dict) -> str:
    if not isinstance(before, dict):
        return "no options recorded"
    changed = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    return ", ".join(f"{k}: {before.get(k)!r} then, {now.get(k)!r} now" for k in changed[:3])


def _merge(out: Path) -> int:
    from jointportrait.tracking.dataset_folder import merge_shards

    result = merge_shards(out)
    print(f"merged {result.num_shards} shard(s): {len(result.done)} clips, {result.frames} frames into "
          f"{result.manifest}" + (f"; {len(result.failed)} failed clip(s) left out: "
                                  f"{', '.join(list(result.failed)[:5])}" if result.failed else ""))
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from jointportrait.errors import InputError

    given = [flag for flag, value in (("--shard", args.shard), ("--landmarks", args.landmarks)) if value is not None]
    if given:
        raise InputError(f"--merge only reads the shards in --out; {given[0]} does not apply")
    return _merge(args.out)
