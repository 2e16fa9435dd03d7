"""The training loop: plain functions, read top to bottom.

``train(recipe)`` builds everything from the recipe, then alternates ``train_one_epoch`` and validation,
writing ``metrics.jsonl`` records (and TensorBoard scalars) and atomic checkpoints in the run folder.
In a distributed run (see :mod:`clsctl.engine.distributed`) every process runs this same code on its share
of the data; only rank 0 logs and writes files.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from clsctl.data.datasets import exclude_replaced_samples
from clsctl.data.device import DeviceInput
from clsctl.data.loaders import build_loader
from clsctl.engine import distributed as D
from clsctl.engine.build import (build_model, build_split, device_input, preprocessing, seed_everything,
                                 warn_if_bf16_is_emulated)
from clsctl.engine.checkpoint import link_checkpoint, load_checkpoint, save_checkpoint
from clsctl.engine.ema import ModelEma
from clsctl.engine.evaluation import run_evaluation
from clsctl.engine.optim import LrSchedule, auto_lr_scale, build_optimizer
from clsctl.engine.progress import make_progress
from clsctl.engine.runlog import MetricsLog
from clsctl.errors import CheckpointError, ClsctlError, RecipeError, TrainingDivergedError
from clsctl.recipe import Recipe
from clsctl.recipe.schema import duration_seconds

logger = logging.getLogger("clsctl")

BEST_METRIC = "accuracy/top1"  # what save_best: auto picks when validation reports it first (it does by default)


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


class TrainingInterrupted(ClsctlError):
    """Ctrl-C, SIGTERM or SIGUSR1 during training; ``last.pt`` holds the position it stopped at (or the last
    completed epoch).

    The exit code is what a shell reports for a process ended by that signal, 128 + its number: 130 for
    Ctrl-C (SIGINT), 143 for SIGTERM, 138 for SIGUSR1 (on Linux).
    """

    exit_code = 128 + signal.SIGINT

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)


@dataclass
class TrainResult:
    """Where a run left its files, and how it ended."""

    work_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_metric: float | None
    epochs: int
    val_metrics: dict[str, float] = field(default_factory=dict)


class GracefulStop:
    """Turns the first Ctrl-C, SIGTERM or SIGUSR1 during training into a request to stop after the current
    optimizer step (so the position can be saved and resumed exactly); a second one interrupts at once.

    SIGTERM is how Kubernetes and Slurm stop a job (with a grace period before SIGKILL); SIGUSR1 is the signal
    Slurm jobs commonly ask for before their time limit (``--signal=USR1@90``) to save and requeue.
    A signal within ``same_press_s`` of the first counts as the same request: under ``--gpus`` or torchrun a
    worker gets Ctrl-C from the terminal and, a moment later, again from the launcher that forwards it.
    A signal that was ignored when training started (``nohup``, background jobs) stays ignored.
    Only from the main thread (signal handlers live there).
    """

    def __init__(self, enabled: bool = True, same_press_s: float = 2.0, announce: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.same_press_s = same_press_s
        self.announce = announce
        self.signum: int | None = None  # the signal that asked to stop
        self._asked_at = 0.0
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if time.monotonic() - self._asked_at < self.same_press_s:
                return  # the launcher forwarding the same request
            self._restore()
            raise KeyboardInterrupt
        self.signum, self._asked_at = signum, time.monotonic()
        if self.announce:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            logger.warning("%s: stopping after this step and saving the position (%s again to stop at once)",
                           name, name)

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            fallback = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, previous if previous is not None else fallback)
        self._previous = {}

    def __enter__(self) -> GracefulStop:
        if self.enabled:
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._restore()


def build_criterion(recipe: Recipe) -> nn.Module:
    """The loss of the recipe's ``loss`` section."""
    from clsctl.engine.losses import build_loss

    config = recipe.loss
    per_class = getattr(config, "class_weights", None) or getattr(config, "pos_weight", None)
    # The class count is checked against the dataset in train(); here the list's own length stands in.
    return build_loss(config, recipe.model.num_classes or (len(per_class) if per_class else 0))


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """This process's RNG states, as data ``torch.load(weights_only=True)`` accepts.

    Python, NumPy and torch's CPU generator, plus, on a GPU, the generator of the one GPU this process uses
    (``cuda``, with its index as ``cuda_index``); never every visible GPU's, which a machine with fewer GPUs
    could not restore.
    """
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
        state["cuda_index"] = device.index
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` saved; the saved GPU generator goes to ``device``.

    Checkpoints written before per-device states hold a list with one state per visible GPU: the entry of
    this process's GPU is used when there is one (none is skipped: a CPU run, or fewer GPUs than saved from).
    """
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    saved = state.get("cuda")
    if saved is None or device is None or device.type != "cuda":
        return
    if isinstance(saved, (list, tuple)):  # the old format: every visible GPU's state
        index = device.index if device.index is not None else 0
        if index >= len(saved):
            return
        saved = saved[index]
    torch.cuda.set_rng_state(saved, device)


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict[str, Any] | None) -> None:
    """Load a saved GradScaler state, unless the run that saved it had no scaling (CPU, bf16, fp32).

    A disabled scaler saves ``{}``, and an enabled one refuses to load that: resuming such a checkpoint with
    fp16 on CUDA keeps the fresh scaler's initial scale instead. The reverse (an fp16 state into a disabled
    scaler) is ignored by the scaler itself.
    """
    if saved:
        scaler.load_state_dict(saved)


def amp_dtype(setting: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``runtime.amp`` on ``device``; ``None`` means full precision.

    ``true`` is fp16 for compatibility. fp16 autocast is used on CUDA only (on the CPU it would only slow
    down); bf16 works on both.
    """
    name = "fp16" if setting is True else setting or None
    if name == "fp16":
        return torch.float16 if device.type == "cuda" else None
    return torch.bfloat16 if name == "bf16" else None


class _Records:
    """Fans one record out to metrics.jsonl and the trackers of ``runtime.loggers`` (see
    :mod:`clsctl.engine.trackers`); silent on ranks other than 0."""

    def __init__(self, run_dir: Path, *, enabled: bool, recipe: Recipe, resume: bool = False) -> None:
        self.sinks: list[Any] = []
        if enabled:
            from clsctl.engine.trackers import build_trackers

            self.sinks.append(MetricsLog(run_dir / "metrics.jsonl"))
            rt = recipe.runtime
            loggers = [*rt.loggers, *(["tensorboard"] if rt.tensorboard else [])]
            self.sinks += build_trackers(loggers, run_dir, recipe.to_dict(), rt.experiment, resume=resume)

    def write(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(record)

    def close(self) -> None:
        for sink in self.sinks:
            if hasattr(sink, "close"):
                sink.close()


def train(recipe: Recipe, work_dir: str | Path | None = None, *, resume: bool | str | Path = False,
          overwrite: bool = False, device: str | None = None, show_progress: bool = True) -> TrainResult:
    """Train the recipe's model; the run folder gets ``recipe.yaml``, ``metrics.jsonl`` and checkpoints.

    Runs as one process, or as one of many when torchrun, srun or ``clsctl train --gpus N`` started it.

    Args:
        recipe: Validated recipe.
        work_dir: Run folder (default: ``runtime.work_dir``, else the first free of ``runs/<recipe name>``,
            ``-2``, ``-3``...; see :mod:`clsctl.engine.runs`).
        resume: ``True`` resumes the run folder's newest of ``last.pt`` and ``recovery.pt``; a path resumes
            that checkpoint.
        overwrite: A named run folder that holds a run is moved to ``<folder>.old-<timestamp>`` first
            (without it, such a folder stops the run before any work).
        device: Overrides ``runtime.device``.
        show_progress: Draw the rich progress bar (rank 0 only).

    Raises:
        RunFolderExistsError: The named run folder holds a run (and neither resume nor overwrite).
        TrainingDivergedError: The loss became NaN or infinite (the last good checkpoint is kept).
        TrainingInterrupted: Ctrl-C, SIGTERM or SIGUSR1; resume with ``resume=True``.
        CheckpointWriteError: A checkpoint could not be written (the previous one is intact).
    """
    ctx = D.setup(device or recipe.runtime.device, duration_seconds(recipe.runtime.dist_timeout))
    try:
        return _train(recipe, work_dir, resume, overwrite, ctx, show_progress)
    finally:
        D.teardown(ctx)


def _run_dir(recipe: Recipe, work_dir: str | Path | None, resume: bool | str | Path, overwrite: bool,
             ctx: D.DistContext) -> tuple[Path, bool | str | Path]:
    """The run folder (chosen on rank 0, the same on every rank) and what to resume.

    A job that Slurm requeued (``runtime.requeue``, ``SLURM_RESTART_COUNT`` > 0) resumes by itself.
    """
    from clsctl.engine.runs import LAST, RECOVERY, RunFolderExistsError, choose_run_dir

    rt = recipe.runtime
    named = Path(work_dir) if work_dir else (Path(rt.work_dir) if rt.work_dir else None)
    default = Path("runs") / (recipe.name or "run")
    requeued = rt.requeue and int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
    choice: tuple[str, str]
    if ctx.is_main:
        try:
            wants_resume = bool(resume) or requeued
            folder = choose_run_dir(named, default, resume=wants_resume, overwrite=overwrite and not resume)
            choice = ("ok", str(folder))
        except RunFolderExistsError as exc:
            choice = ("exists", str(exc))
    kind, value = D.broadcast_object(choice if ctx.is_main else None, ctx)
    if kind == "exists":
        raise RunFolderExistsError(value)
    run_dir = Path(value)
    if requeued and not resume and any((run_dir / name).is_file() for name in (LAST, RECOVERY)):
        logger.info("Slurm requeued this job (restart %s): resuming %s", os.environ["SLURM_RESTART_COUNT"], run_dir)
        resume = True
    return run_dir, resume


def _train(recipe: Recipe, work_dir: str | Path | None, resume: bool | str | Path, overwrite: bool,
           ctx: D.DistContext, show_progress: bool) -> TrainResult:
    from clsctl.engine.runs import RECOVERY, newest_checkpoint

    rt = recipe.runtime
    run_dir, resume = _run_dir(recipe, work_dir, resume, overwrite, ctx)
    logger.info("run folder: %s", run_dir)
    dev = ctx.device
    on_cuda = dev.type == "cuda"
    autocast_dtype = amp_dtype(rt.amp, dev)
    warn_if_bf16_is_emulated(autocast_dtype, dev)
    channels_last = rt.channels_last and on_cuda
    if rt.deterministic and on_cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic GEMMs
    seed_everything(rt.seed, rt.deterministic)

    # Data: the train split defines the classes; validation must use the same ones. Each process reads
    # every world_size-th sample; the per-sample seeds make the images the same whatever the split.
    inputs = device_input(recipe, dev)  # copies uint8 batches to the device and normalises them there
    train_set = build_split(recipe, "train", output="uint8")
    class_names = train_set.classes
    val_set = build_split(recipe, "val", output="uint8") if recipe.data.val is not None else None
    if val_set is not None:
        exclude_replaced_samples(val_set)  # an unreadable val image is left out, not scored twice
        if val_set.classes != class_names:
            raise ClsctlError(f"val classes {val_set.classes} differ from train classes {class_names}")
    _check_per_class_lengths(recipe, len(class_names))
    pin = recipe.data.loader.pin_memory if recipe.data.loader.pin_memory is not None else on_cuda
    shard = {"num_replicas": ctx.world_size, "rank": ctx.rank}
    train_loader = build_loader(train_set, recipe.data.loader, train=True, seed=rt.seed, pin_memory=pin, **shard)
    val_loader = (build_loader(val_set, recipe.data.loader, train=False, pin_memory=pin, **shard)
                  if val_set is not None else None)

    # Model. It is built under the run's seed so its init is reproducible (and equal on every rank).
    torch.manual_seed(rt.seed)
    raw_model = build_model(recipe, len(class_names)).to(dev)
    if rt.load_from and not resume:
        from clsctl.models.weights import load_weights_file

        load_weights_file(raw_model, rt.load_from)
        logger.info("loaded weights from %s", rt.load_from)
    if rt.sync_bn and ctx.distributed:
        if on_cuda:
            raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)
        else:
            logger.warning("runtime.sync_bn: SyncBatchNorm runs on CUDA only; BatchNorm stays per process")
    if channels_last:
        raw_model = raw_model.to(memory_format=torch.channels_last)
    ema = ModelEma(raw_model, recipe.ema.decay, warmup=recipe.ema.warmup) if recipe.ema else None
    model: nn.Module = raw_model
    if ctx.distributed:
        model = D.wrap_ddp(raw_model, ctx)
    if rt.compile:
        model = torch.compile(model, mode=None if rt.compile is True else rt.compile)

    # Optimizer and schedule. One optimizer step takes accumulate_steps batches from every process.
    accumulate = recipe.optim.accumulate_steps
    global_batch = recipe.data.loader.batch_size * ctx.world_size * accumulate
    lr_scale = auto_lr_scale(recipe, global_batch)
    if rt.auto_scale_lr:
        logger.info("auto-scale-lr: global batch %d / base %d -> lr x %.4g = %.6g", global_batch,
                    recipe.optim.base_batch_size, lr_scale, recipe.optim.lr * lr_scale)
    optimizer = build_optimizer(raw_model, recipe.optim, lr_scale=lr_scale)
    steps_per_epoch = math.ceil(len(train_loader) / accumulate)
    schedule = LrSchedule(optimizer, recipe.schedule, steps_per_epoch, rt.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)  # bf16 needs no scaling
    criterion = build_criterion(recipe).to(dev)
    batch_augments = list(getattr(recipe.data, "batch_augments", []) or [])
    if batch_augments and recipe.loss.type == "focal":
        raise RecipeError("data.batch_augments give soft targets, which loss type 'focal' does not take; use "
                          "cross_entropy")

    start_epoch, best_metric, best_ema_metric = 0, None, None
    start_batch, mix_state = 0, None  # a run stopped by Ctrl-C resumes inside its epoch
    if resume:
        path = newest_checkpoint(run_dir) if resume is True else Path(resume)
        ckpt = load_checkpoint(path)
        if ckpt["recipe"]["model"]["name"] != recipe.model.name:
            raise CheckpointError(f"{path} holds a {ckpt['recipe']['model']['name']} model, "
                                  f"the recipe a {recipe.model.name}")
        raw_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        restore_scaler(scaler, ckpt.get("scaler"))
        if ema is not None:
            if "ema" in ckpt:
                ema.load_state_dict(ckpt["ema"])
            else:
                logger.warning("%s has no EMA weights; the EMA starts from the resumed weights", path)
                ema = ModelEma(raw_model, recipe.ema.decay, warmup=recipe.ema.warmup)
        # Each process continues its own random streams; a checkpoint from another number of processes (or
        # from before per-rank states) has only rank 0's, which all then use.
        per_rank = ckpt.get("rank_states") or []
        own = per_rank[ctx.rank] if len(per_rank) == ctx.world_size else {}
        set_rng_state(own.get("rng", ckpt["rng"]), dev)
        start_epoch, best_metric = int(ckpt["epoch"]), ckpt.get("best_metric")
        best_ema_metric = ckpt.get("best_ema_metric")
        start_batch = int(ckpt.get("position", 0))
        mix_state = own.get("mix_state", ckpt.get("mix_state"))
        where = f", batch {start_batch} of epoch {start_epoch + 1}" if start_batch else ""
        logger.info("resumed from %s at epoch %d%s (lr %.6g)", path, start_epoch, where, schedule.current_lr())
        if start_epoch >= rt.epochs:
            logger.warning("%s already finished all %d epochs; nothing to train", path, rt.epochs)
    if ctx.distributed:
        logger.info("distributed: %d processes, %d images per process per step, global batch %d",
                    ctx.world_size, recipe.data.loader.batch_size, global_batch)

    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
    log = _Records(run_dir, enabled=ctx.is_main, recipe=recipe, resume=bool(resume))
    if resume and ctx.is_main:  # the steps after this position are done again: their earlier records are superseded
        MetricsLog(run_dir / "metrics.jsonl").write({"mode": "resume", "epoch": start_epoch, "iter": start_batch,
                                                     "step": schedule.step_count, "checkpoint": str(path)})
    common = {"recipe": recipe.to_dict(), "class_names": class_names, "preprocessing": preprocessing(recipe)}

    def rank_state(mix: Any = None) -> dict[str, Any]:
        """This process's random streams: its RNGs and its batch mixer's generator."""
        state = {"rng": rng_state(dev)}
        if mix is not None:
            state["mix_state"] = mix.keywords["generator"].get_state()
        return state

    def checkpoint(epoch: int, metrics: dict[str, float], position: int = 0,
                   rank_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything to continue from: ``epoch`` finished epochs plus ``position`` batches of the next.

        ``rank_states`` (every process's :func:`rank_state`, gathered by all of them) is what a position
        inside an epoch needs; at an epoch's end the streams are re-seeded, and rank 0's state is enough.
        """
        own = rank_states[0] if rank_states else rank_state()
        state = {**common, "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                 "rng": own["rng"], "best_metric": best_metric, "metrics": metrics}
        if position:
            state["position"] = position
            if "mix_state" in own:
                state["mix_state"] = own["mix_state"]
            if rank_states and len(rank_states) > 1:
                state["rank_states"] = rank_states
        if ema is not None:
            state["ema"] = ema.state_dict()
            state["best_ema_metric"] = best_ema_metric
        return state

    last_path, best_path, best_ema_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "best_ema.pt"
    recovery_path = run_dir / RECOVERY
    val_metrics: dict[str, float] = {}
    best_key: str | None = None
    stop = GracefulStop(announce=ctx.is_main)  # rank 0 speaks for the run
    recovery_s = duration_seconds(rt.recovery_interval) or 0.0
    last_saved = time.monotonic()  # of the exact position: last.pt or recovery.pt

    def write_last(state: dict[str, Any]) -> None:
        """Write last.pt (rank 0); a recovery file behind it is dropped."""
        nonlocal last_saved
        save_checkpoint(state, last_path)
        recovery_path.unlink(missing_ok=True)
        last_saved = time.monotonic()

    def after_step(batch_index: int) -> bool:
        """After each optimizer step inside an epoch: save the recovery file when it is due; whether to stop.

        Every process must stop (and save) at the same step, or the others would wait forever in the next
        collective: they agree on both once per optimizer step (one tiny CPU all-reduce, only with DDP).
        """
        nonlocal last_saved
        due = ctx.is_main and recovery_s > 0 and time.monotonic() - last_saved >= recovery_s  # rank 0 times
        stop_now, save_now = D.any_ranks([stop.requested(), due], ctx)
        if save_now and not stop_now:
            rank_states = D.gather_objects(rank_state(mix), ctx)
            if ctx.is_main:
                save_checkpoint(checkpoint(epoch, val_metrics, batch_index, rank_states), recovery_path)
            last_saved = time.monotonic()
        return stop_now
    try:
        with make_progress(show_progress and ctx.is_main) as progress, stop:
            for epoch in range(start_epoch, rt.epochs):
                resuming_inside = epoch == start_epoch and start_batch > 0
                # Re-seeding per epoch makes a resumed run draw the same random numbers (dropout, ...) as an
                # uninterrupted one; data augmentation is seeded per sample by the sampler. Ranks get their
                # own stream so they do not share dropout masks. Inside an epoch the saved RNG state is used.
                if not resuming_inside:
                    torch.manual_seed(rt.seed + epoch + 1_000_003 * ctx.rank)
                first = start_batch if resuming_inside else 0
                train_loader.sampler.set_epoch(epoch, start=first * recipe.data.loader.batch_size)
                mix = _batch_mixer(batch_augments, len(class_names), rt.seed, epoch, ctx.rank)
                if resuming_inside and mix is not None and mix_state is not None:
                    mix.keywords["generator"].set_state(mix_state)
                stopped_at = train_one_epoch(
                    model, train_loader, criterion, optimizer, schedule, scaler, dev, epoch, rt.epochs, log,
                    progress, autocast_dtype=autocast_dtype, channels_last=channels_last,
                    log_interval=rt.log_interval, accumulate=accumulate, clip=recipe.optim.clip_grad, ema=ema,
                    ema_interval=recipe.ema.interval if recipe.ema else 1, ctx=ctx, mix=mix, start_batch=first,
                    stop=after_step, inputs=inputs)
                if stopped_at is not None:  # Ctrl-C, SIGTERM, SIGUSR1: keep the exact position, then stop
                    _check_finite_weights(raw_model, epoch)
                    rank_states = D.gather_objects(rank_state(mix), ctx)  # every process takes part
                    if ctx.is_main:
                        write_last(checkpoint(epoch, val_metrics, stopped_at, rank_states))
                    D.barrier(ctx)  # no process leaves (and gets the others killed) while rank 0 still writes
                    signum = stop.signum or signal.SIGINT
                    requeued = _requeue(rt, signum, ctx)
                    raise TrainingInterrupted(
                        f"training interrupted at epoch {epoch + 1}, batch {stopped_at}; {last_path} holds that "
                        f"position; {requeued or 'continue with --resume'}", signum)
                _check_finite_weights(raw_model, epoch)
                is_last = epoch + 1 == rt.epochs
                save_last = (epoch + 1) % rt.checkpoint_interval == 0 or is_last
                new_best = False
                if val_loader is not None and ((epoch + 1) % rt.val_interval == 0 or is_last):
                    D.broadcast_buffers(raw_model, ctx)  # score rank 0's BatchNorm statistics, the ones saved
                    if ema is not None:
                        D.broadcast_buffers(ema.module, ctx)
                    val_metrics = validate(raw_model, val_loader, dev, len(class_names), ctx, progress,
                                           f"val {epoch + 1}", autocast_dtype, channels_last, inputs=inputs)
                    log.write({"mode": "val", "epoch": epoch + 1, "step": schedule.step_count, **val_metrics})
                    best_key, better = _best_rule(rt, val_metrics)
                    if best_key is not None and better(val_metrics[best_key], best_metric):
                        best_metric = val_metrics[best_key]
                        new_best = True
                        if ctx.is_main and not save_last:  # else best.pt becomes a link to this epoch's last.pt
                            save_checkpoint(checkpoint(epoch + 1, val_metrics), best_path)
                    if ema is not None:
                        ema_metrics = validate(ema.module, val_loader, dev, len(class_names), ctx, progress,
                                               f"val ema {epoch + 1}", autocast_dtype, channels_last, inputs=inputs)
                        log.write({"mode": "val_ema", "epoch": epoch + 1, "step": schedule.step_count, **ema_metrics})
                        if best_key is not None and better(ema_metrics[best_key], best_ema_metric):
                            best_ema_metric = ema_metrics[best_key]
                            if ctx.is_main:  # the EMA weights as "model": test/infer/export use it as is
                                save_checkpoint({**checkpoint(epoch + 1, ema_metrics),
                                                 "model": ema.module.state_dict(), "ema_weights": True},
                                                best_ema_path)
                if ctx.is_main and save_last:
                    write_last(checkpoint(epoch + 1, val_metrics))
                    if new_best:  # the same state: one write, as timm's CheckpointSaver does
                        link_checkpoint(last_path, best_path)
                    _keep_epoch_checkpoint(last_path, epoch + 1, rt.keep_checkpoints)
    except KeyboardInterrupt:
        saved = f"; {last_path} holds the last saved epoch" if last_path.exists() else ""
        raise TrainingInterrupted(f"training interrupted{saved}; continue with --resume",
                                  stop.signum or signal.SIGINT) from None
    finally:
        log.close()
    if ctx.is_main and not last_path.exists():  # resumed a finished run: still leave a last.pt
        write_last(checkpoint(start_epoch, val_metrics))
    D.barrier(ctx)  # no process returns (and tears down) while rank 0 still writes
    return TrainResult(run_dir, last_path, best_path if best_path.exists() else None, best_metric, rt.epochs,
                       val_metrics)


def train_one_epoch(model: nn.Module, loader: Any, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: LrSchedule, scaler: torch.amp.GradScaler, device: torch.device, epoch: int, epochs: int,
                    log: Any, progress: Any, *, autocast_dtype: torch.dtype | None = None,
                    channels_last: bool = False, log_interval: int = 20, accumulate: int = 1, clip: Any = None,
                    ema: ModelEma | None = None, ema_interval: int = 1, ctx: D.DistContext | None = None,
                    mix: Any = None, start_batch: int = 0, stop: Callable[[int], bool] | None = None,
                    inputs: DeviceInput | None = None) -> int | None:
    """One pass over ``loader``: an optimizer step every ``accumulate`` batches; records every ``log_interval``
    batches.

    Args:
        start_batch: Batches of this epoch already done (the loader's sampler skips them).
        stop: Called with the number of batches done after every optimizer step but the epoch's last; when
            it says yes the epoch ends there.
        inputs: Copies a batch to the device and normalises it there (default: mean 0, std 1 for uint8).

    Returns:
        The number of this epoch's batches done when ``stop`` ended it early, else None.
    """
    ctx = ctx or D.DistContext(device=device)
    inputs = inputs or DeviceInput((0.0,) * 3, (1.0,) * 3)
    model.train()
    n_batches = start_batch + len(loader)
    world = ctx.world_size
    task = progress.add_task(f"epoch {epoch + 1}/{epochs}", total=loader.sampler.per_replica() * world,
                             completed=start_batch * loader.batch_size * world, status="")
    # The loss is summed on the device and read only at log intervals: reading it every step would force
    # a GPU sync per step.
    loss_sum = torch.zeros((), device=device)
    batches, images_seen = 0, 0
    interval_start = time.perf_counter()
    data_time = 0.0
    lr = schedule.current_lr()
    use_autocast = autocast_dtype is not None
    # The last accumulation group of an epoch may be short; its losses are divided by its real size.
    full_groups_end = n_batches - n_batches % accumulate
    optimizer.zero_grad(set_to_none=True)
    fetch_start = time.perf_counter()
    for batch_index, (images, targets) in enumerate(loader, start=start_batch + 1):
        data_time += time.perf_counter() - fetch_start
        images, targets = inputs(images, targets, device, dtype=autocast_dtype, channels_last=channels_last)
        targets = targets.to(device, non_blocking=True)
        if mix is not None:  # Mixup/CutMix/ResizeMix: mixed images, soft targets
            images, targets = mix(images, targets)

        steps_now = batch_index % accumulate == 0 or batch_index == n_batches
        # Under DDP, gradients of the batches before the group's last one stay local (no all-reduce).
        local_only = world > 1 and not steps_now and hasattr(model, "no_sync")
        sync = model.no_sync() if local_only else contextlib.nullcontext()
        with sync:
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                loss = criterion(model(images), targets)
            group = accumulate if batch_index <= full_groups_end else n_batches - full_groups_end
            scaler.scale(loss if group == 1 else loss / group).backward()  # the scaler is a no-op without fp16
        loss_sum += loss.detach()

        if steps_now:
            if clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                if clip.type == "norm":
                    torch.nn.utils.clip_grad_norm_(params, clip.max_norm, clip.norm_type)
                else:
                    torch.nn.utils.clip_grad_value_(params, clip.max_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = schedule.current_lr()  # the lr this step used
            schedule.step()
            if ema is not None and schedule.step_count % ema_interval == 0:
                ema.update()

        batches += 1
        images_seen += len(targets) * world
        progress.advance(task, len(targets) * world)
        if batch_index % log_interval == 0 or batch_index == n_batches:
            # Every rank reduces the same loss, so a NaN on one stops them all at the same step.
            mean_loss = float(D.all_reduce_sum(loss_sum, ctx)) / (batches * world)
            if not math.isfinite(mean_loss):
                raise TrainingDivergedError(
                    f"loss became {mean_loss} at epoch {epoch + 1}, step {batch_index}; stopped. The last good "
                    f"checkpoint is kept. Lower optim.lr, add warm-up or gradient clipping, or check the data"
                )
            elapsed = time.perf_counter() - interval_start
            record = {"mode": "train", "epoch": epoch + 1, "iter": batch_index, "step": schedule.step_count,
                      "lr": lr, "loss": mean_loss, "time": elapsed / batches, "data_time": data_time / batches,
                      "img_per_s": images_seen / max(elapsed, 1e-9)}
            log.write(record)
            progress.update(task, status=f"loss {mean_loss:.4f}  lr {lr:.3g}  {record['img_per_s']:.0f} img/s")
            loss_sum.zero_()
            batches, images_seen, data_time = 0, 0, 0.0
            interval_start = time.perf_counter()
        if steps_now and stop is not None and batch_index < n_batches and stop(batch_index):
            return batch_index  # after a whole optimizer step, so the saved state is consistent
        fetch_start = time.perf_counter()
    return None


@torch.no_grad()
def validate(model: nn.Module, loader: Any, device: torch.device, num_classes: int, ctx: D.DistContext,
             progress: Any, description: str, autocast_dtype: torch.dtype | None = None,
             channels_last: bool = False, inputs: DeviceInput | None = None) -> dict[str, float]:
    """Metrics of ``model`` on the whole validation set, the same on every process.

    Each process runs its share; the logits are gathered in dataset order with the sampler's padding
    repeats dropped (:func:`~clsctl.engine.distributed.gather_by_index`), and the metrics are computed once
    from them by :func:`~clsctl.engine.evaluation.run_evaluation` (the function ``clsctl test`` uses), so a
    distributed validation equals a single-process one.
    """
    model.eval()
    inputs = inputs or DeviceInput((0.0,) * 3, (1.0,) * 3)
    task = progress.add_task(description, total=len(loader.sampler) * ctx.world_size, status="")
    # The logits stay on the device until the end: one copy to the host per validation, not one per batch
    # (each would wait for the GPU queue to drain).
    logits, targets = [], []
    for images, batch_targets in loader:
        images, batch_targets = inputs(images, batch_targets, device, dtype=autocast_dtype,
                                       channels_last=channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(images)
        logits.append(out.float())
        targets.append(batch_targets)
        progress.advance(task, len(batch_targets) * ctx.world_size)
    # The order this process's loader yielded samples in (asked after the pass: a stream knows it only then).
    indices = [index for index, _ in loader.sampler]
    all_logits, all_targets = D.gather_by_index(indices, torch.cat(logits).cpu(), torch.cat(targets), ctx=ctx)
    chunks = list(zip(all_logits.split(1024), all_targets.split(1024)))
    output = run_evaluation(nn.Identity(), chunks, torch.device("cpu"), num_classes)
    metrics = output.metrics
    if output.excluded and ctx.is_main:
        logger.warning("%d unreadable validation image(s) left out of the metrics", output.excluded)
    shown = "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in list(metrics.items())[:3])
    progress.update(task, status=shown)
    return metrics


def _batch_mixer(augments: list[Any], num_classes: int, seed: int, epoch: int, rank: int) -> Any:
    """``mix(images, targets)`` for the epoch, or ``None`` without batch augments.

    Its generator is seeded by (seed, epoch, rank), so a resumed run mixes exactly as an uninterrupted one.
    """
    if not augments:
        return None
    from clsctl.data.mixing import apply_batch_augment

    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1009 + rank)
    return functools.partial(apply_batch_augment, num_classes=num_classes, config_list=augments, generator=generator)


def _requeue(rt: Any, signum: int, ctx: D.DistContext) -> str:
    """With ``runtime.requeue`` under Slurm, SIGUSR1 puts the job back in the queue (rank 0 asks); returns what
    to tell the user ('' when nothing was requeued)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not (rt.requeue and signum == getattr(signal, "SIGUSR1", None) and job and ctx.is_main):
        return ""
    import subprocess

    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not requeue Slurm job %s: %s", job, exc)
        return ""
    if done.returncode != 0:
        logger.warning("could not requeue Slurm job %s: %s", job, (done.stderr or done.stdout).strip())
        return ""
    return f"Slurm job {job} is requeued and resumes from there when it starts again"


def _best_rule(rt: Any, metrics: dict[str, float]) -> tuple[str | None, Any]:
    """The metric that picks best.pt and a ``better(new, old)`` test for it."""
    if rt.save_best is None or rt.save_best == "none":
        return None, None
    key = next(iter(metrics)) if rt.save_best == "auto" else rt.save_best
    if key not in metrics:
        raise RecipeError(f"runtime.save_best: validation has no metric '{key}'; it reports: {', '.join(metrics)}")
    rule = rt.save_best_rule or ("less" if "loss" in key else "greater")
    if rule == "less":
        return key, lambda new, old: old is None or new < old
    return key, lambda new, old: old is None or new > old


def _check_finite_weights(model: nn.Module, epoch: int) -> None:
    """Refuse to checkpoint weights that a last, still finite, loss turned into inf/NaN."""
    params = [p.detach() for p in model.parameters()]
    if params and not bool(torch.isfinite(torch.stack(torch._foreach_norm(params))).all()):
        raise TrainingDivergedError(f"the weights became inf/NaN at the end of epoch {epoch + 1}; stopped. The last "
                                    f"good checkpoint is kept. Lower optim.lr, add warm-up or gradient clipping")


def _check_per_class_lengths(recipe: Recipe, num_classes: int) -> None:
    for key in ("class_weights", "pos_weight"):
        values = getattr(recipe.loss, key, None)
        if values is not None and len(values) != num_classes:
            raise RecipeError(f"loss.{key}: has {len(values)} values but the dataset has {num_classes} classes")


def _keep_epoch_checkpoint(last_path: Path, epoch: int, keep: int) -> None:
    """Also keep ``epoch_N.pt`` (a hard link to the fresh last.pt, a copy where links fail) and delete the
    oldest beyond ``keep`` (-1: keep all)."""
    if keep == 0:
        return
    target = last_path.with_name(f"epoch_{epoch}.pt")
    target.unlink(missing_ok=True)
    try:
        os.link(last_path, target)
    except OSError:
        import shutil

        shutil.copyfile(last_path, target)
    if keep > 0:
        kept = sorted(last_path.parent.glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in kept[:-keep]:
            old.unlink(missing_ok=True)
