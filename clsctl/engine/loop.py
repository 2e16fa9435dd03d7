"""The training loop: plain functions, read top to bottom.

``train(recipe)`` builds everything from the recipe (:func:`build_run`, :func:`build_state`), resumes a
checkpoint if asked (:func:`resume_state`), then for each epoch runs :func:`train_one_epoch` and the
end-of-epoch bookkeeping (:func:`end_of_epoch`: validation, best and EMA-best checkpoints, ``last.pt``),
writing ``metrics.jsonl`` records (and TensorBoard scalars) and atomic checkpoints in the run folder.
What stays fixed during a run is a :class:`Run`; what training changes, and a checkpoint keeps, is the
:class:`RunState`.

In a distributed run (see :mod:`clsctl.engine.distributed`) every process runs this same code on its share
of the data; only rank 0 logs and writes files.
"""

from __future__ import annotations

import contextlib
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
from typing import Any, NoReturn

import numpy as np
import torch
import yaml
from torch import nn

from clsctl.atomic import write_text_atomic
from clsctl.data.datasets import exclude_replaced_samples
from clsctl.data.device import DeviceInput
from clsctl.data.preprocessing import Preprocessing
from clsctl.data.loaders import build_loader
from clsctl.data.mixing import BatchMixer
from clsctl.engine import distributed as D
from clsctl.engine.build import (build_model, build_split, device_input, seed_everything,
                                 warn_if_bf16_is_emulated)
from clsctl.engine.checkpoint import link_checkpoint, save_checkpoint
from clsctl.engine.ema import ModelEma
from clsctl.engine.evaluate import forward_pass
from clsctl.engine.metrics import evaluate_logits
from clsctl.engine.optim import LrSchedule, auto_lr_scale, build_optimizer
from clsctl.engine.progress import make_progress
from clsctl.engine.runlog import MetricsLog
from clsctl.engine.runs import LAST, RECOVERY, RunFolderExistsError, choose_run_dir, newest_checkpoint
from clsctl.errors import CheckpointError, ClsctlError, RecipeError, TrainingDivergedError, TrainingInterrupted
from clsctl.recipe import Recipe
from clsctl.readers import read_checkpoint
from clsctl.recipe.schema import duration_seconds

logger = logging.getLogger("clsctl")

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))

@dataclass
class TrainResult:
    """Where a run left its files, and how it ended."""

    work_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_metric: float | None
    epochs: int
    val_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """What a training run is built from and does not change while it trains."""

    recipe: Recipe
    ctx: D.DistContext
    run_dir: Path
    class_names: list[str]
    train_loader: Any
    val_loader: Any | None
    criterion: nn.Module
    inputs: DeviceInput  # copies uint8 batches to the device and normalises them there
    autocast_dtype: torch.dtype | None = None  # None: full precision
    channels_last: bool = False
    stop: GracefulStop | None = None  # asks to stop after a step (Ctrl-C, SIGTERM, SIGUSR1)
    recovery_s: float = 0.0  # runtime.recovery_interval in seconds (0: no recovery file)
    log: Any = None  # where records go (see _Records); set when the run folder is made
    progress: Any = None  # the progress display; set when training starts

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def last_path(self) -> Path:
        return self.run_dir / LAST

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def best_ema_path(self) -> Path:
        return self.run_dir / "best_ema.pt"

    @property
    def recovery_path(self) -> Path:
        return self.run_dir / RECOVERY


@dataclass
class RunState:
    """Everything training changes: what a checkpoint holds, and where the run is."""

    raw_model: nn.Module  # the model itself: what is saved
    model: nn.Module  # what trains: ``raw_model``, in DDP and/or compiled
    optimizer: torch.optim.Optimizer
    schedule: LrSchedule  # its ``step_count`` is the number of optimizer steps taken
    scaler: torch.amp.GradScaler
    ema: ModelEma | None = None
    mixer: BatchMixer | None = None
    epoch: int = 0  # epochs finished
    position: int = 0  # batches of the next epoch done already (a run stopped inside an epoch resumes there)
    best_metric: float | None = None
    best_ema_metric: float | None = None
    val_metrics: dict[str, float] = field(default_factory=dict)  # of the latest validation
    last_saved: float = field(default_factory=time.monotonic)  # when last.pt or recovery.pt last saved it


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


def _train(recipe: Recipe, work_dir: str | Path | None, resume: bool | str | Path, overwrite: bool,
           ctx: D.DistContext, show_progress: bool) -> TrainResult:
    """The whole run in outline: build, resume, then train and close each epoch."""
    run_dir, resume = _run_dir(recipe, work_dir, resume, overwrite, ctx)
    logger.info("run folder: %s", run_dir)
    run = build_run(recipe, ctx, run_dir)
    state = build_state(run, load_weights=not resume)
    resumed_from = resume_state(run, state, resume) if resume else None
    if ctx.distributed:
        logger.info("distributed: %d processes, %d images per process per step, global batch %d",
                    ctx.world_size, recipe.data.loader.batch_size, _global_batch(recipe, ctx))
    _start_run_folder(run, state, resumed_from)
    state.last_saved = time.monotonic()  # recovery files are written this long after the last save
    try:
        with make_progress(show_progress and ctx.is_main) as run.progress, run.stop:
            while state.epoch < recipe.runtime.epochs:
                _train_epoch(run, state)
                end_of_epoch(run, state)
    except KeyboardInterrupt:
        saved = f"; {run.last_path} holds the last saved epoch" if run.last_path.exists() else ""
        raise TrainingInterrupted(f"training interrupted{saved}; continue with --resume",
                                  run.stop.signum or signal.SIGINT) from None
    finally:
        run.log.close()
    if ctx.is_main and not run.last_path.exists():  # resumed a finished run: still leave a last.pt
        _write_last(run, state, _checkpoint(run, state))
    D.barrier(ctx)  # no process returns (and tears down) while rank 0 still writes
    best = run.best_path if run.best_path.exists() else None
    return TrainResult(run_dir, run.last_path, best, state.best_metric, recipe.runtime.epochs, state.val_metrics)


def _run_dir(recipe: Recipe, work_dir: str | Path | None, resume: bool | str | Path, overwrite: bool,
             ctx: D.DistContext) -> tuple[Path, bool | str | Path]:
    """The run folder (chosen on rank 0, the same on every rank) and what to resume.

    A job that Slurm requeued (``runtime.requeue``, ``SLURM_RESTART_COUNT`` > 0) resumes by itself.
    """
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


# --------------------------------------------------------------------------- building


def build_run(recipe: Recipe, ctx: D.DistContext, run_dir: Path) -> Run:
    """Precision, seeds, data, loaders and loss: what the run does not change while it trains.

    The train split defines the classes; validation must use the same ones. Each process reads every
    world_size-th sample; the per-sample seeds make the images the same whatever the split.
    """
    rt, dev = recipe.runtime, ctx.device
    on_cuda = dev.type == "cuda"
    autocast_dtype = amp_dtype(rt.amp, dev)
    warn_if_bf16_is_emulated(autocast_dtype, dev)
    if rt.deterministic and on_cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic GEMMs
    seed_everything(rt.seed, rt.deterministic)

    inputs = device_input(recipe, dev)
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
    return Run(recipe, ctx, run_dir, class_names, train_loader, val_loader, criterion=build_criterion(recipe).to(dev),
               inputs=inputs, autocast_dtype=autocast_dtype, channels_last=rt.channels_last and on_cuda,
               stop=GracefulStop(announce=ctx.is_main),  # rank 0 speaks for the run
               recovery_s=duration_seconds(rt.recovery_interval) or 0.0)


def build_state(run: Run, *, load_weights: bool = True) -> RunState:
    """The model, optimizer, lr schedule, gradient scaler, EMA and batch mixer, as a run starts.

    Args:
        run: What :func:`build_run` built.
        load_weights: Load ``runtime.load_from`` (not when resuming: the checkpoint's weights win).
    """
    recipe, ctx = run.recipe, run.ctx
    raw_model = _build_model(run, load_weights)
    ema = ModelEma(raw_model, recipe.ema.decay, warmup=recipe.ema.warmup) if recipe.ema else None
    model: nn.Module = raw_model
    if ctx.distributed:
        model = D.wrap_ddp(raw_model, ctx)
    if recipe.runtime.compile:
        model = torch.compile(model, mode=None if recipe.runtime.compile is True else recipe.runtime.compile)

    # One optimizer step takes accumulate_steps batches from every process.
    global_batch = _global_batch(recipe, ctx)
    lr_scale = auto_lr_scale(recipe, global_batch)
    if recipe.runtime.auto_scale_lr:
        logger.info("auto-scale-lr: global batch %d / base %d -> lr x %.4g = %.6g", global_batch,
                    recipe.optim.base_batch_size, lr_scale, recipe.optim.lr * lr_scale)
    optimizer = build_optimizer(raw_model, recipe.optim, lr_scale=lr_scale)
    steps_per_epoch = math.ceil(len(run.train_loader) / recipe.optim.accumulate_steps)
    schedule = LrSchedule(optimizer, recipe.schedule, steps_per_epoch, recipe.runtime.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=run.autocast_dtype == torch.float16)  # bf16 needs no scaling
    return RunState(raw_model, model, optimizer, schedule, scaler, ema, _batch_mixer(run))


def _build_model(run: Run, load_weights: bool) -> nn.Module:
    """The model on the run's device, built under the run's seed so its init is reproducible (and equal on
    every rank)."""
    rt, ctx = run.recipe.runtime, run.ctx
    torch.manual_seed(rt.seed)
    model = build_model(run.recipe, len(run.class_names)).to(ctx.device)
    if rt.load_from and load_weights:
        from clsctl.models.weights import load_weights_file

        load_weights_file(model, rt.load_from)
        logger.info("loaded weights from %s", rt.load_from)
    if rt.sync_bn and ctx.distributed:
        if ctx.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            logger.warning("runtime.sync_bn: SyncBatchNorm runs on CUDA only; BatchNorm stays per process")
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _batch_mixer(run: Run) -> BatchMixer | None:
    """The mixer of ``data.batch_augments`` (Mixup/CutMix/ResizeMix), or None without them."""
    recipe = run.recipe
    augments = list(getattr(recipe.data, "batch_augments", []) or [])
    if not augments:
        return None
    if recipe.loss.type == "focal":
        raise RecipeError("data.batch_augments give soft targets, which loss type 'focal' does not take; use "
                          "cross_entropy")
    return BatchMixer(augments, len(run.class_names), recipe.runtime.seed, run.ctx.rank)


def _global_batch(recipe: Recipe, ctx: D.DistContext) -> int:
    """Images per optimizer step, over all processes."""
    return recipe.data.loader.batch_size * ctx.world_size * recipe.optim.accumulate_steps


# --------------------------------------------------------------------------- resuming


def resume_state(run: Run, state: RunState, resume: bool | str | Path) -> Path:
    """Load a checkpoint into ``state``: ``True`` takes the run folder's newest; returns its path."""
    recipe = run.recipe
    path = newest_checkpoint(run.run_dir) if resume is True else Path(resume)
    ckpt = read_checkpoint(path)
    if ckpt["recipe"]["model"]["name"] != recipe.model.name:
        raise CheckpointError(f"{path} holds a {ckpt['recipe']['model']['name']} model, "
                              f"the recipe a {recipe.model.name}")
    state.raw_model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.schedule.load_state_dict(ckpt["schedule"])
    restore_scaler(state.scaler, ckpt.get("scaler"))
    if state.ema is not None:
        if "ema" in ckpt:
            state.ema.load_state_dict(ckpt["ema"])
        else:
            logger.warning("%s has no EMA weights; the EMA starts from the resumed weights", path)
            state.ema = ModelEma(state.raw_model, recipe.ema.decay, warmup=recipe.ema.warmup)
    # Each process continues its own random streams; a checkpoint from another number of processes (or
    # from before per-rank states) has only rank 0's, which all then use.
    per_rank = ckpt.get("rank_states") or []
    own = per_rank[run.ctx.rank] if len(per_rank) == run.ctx.world_size else {}
    set_rng_state(own.get("rng", ckpt["rng"]), run.device)
    state.epoch, state.best_metric = int(ckpt["epoch"]), ckpt.get("best_metric")
    state.best_ema_metric = ckpt.get("best_ema_metric")
    state.position = int(ckpt.get("position", 0))  # a run stopped by Ctrl-C resumes inside its epoch
    mix_state = own.get("mix_state", ckpt.get("mix_state"))
    if state.position and state.mixer is not None:
        state.mixer.set_epoch(state.epoch)
        if mix_state is not None:
            state.mixer.load_state_dict(mix_state)
    where = f", batch {state.position} of epoch {state.epoch + 1}" if state.position else ""
    logger.info("resumed from %s at epoch %d%s (lr %.6g)", path, state.epoch, where, state.schedule.current_lr())
    if state.epoch > recipe.runtime.epochs:
        raise ClsctlError(f"{path} has trained {state.epoch} epochs already, more than runtime.epochs = "
                          f"{recipe.runtime.epochs}: --resume would train nothing; set runtime.epochs above "
                          f"{state.epoch} to train on (or test the checkpoint as it is)")
    if state.epoch == recipe.runtime.epochs:
        logger.warning("%s already finished all %d epochs; nothing to train", path, recipe.runtime.epochs)
    return path


def _start_run_folder(run: Run, state: RunState, resumed_from: Path | None) -> None:
    """Rank 0 writes ``recipe.yaml``; every rank opens its records (silent but on rank 0)."""
    recipe = run.recipe
    if run.ctx.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    run.log = _Records(run.run_dir, enabled=run.ctx.is_main, recipe=recipe, resume=resumed_from is not None)
    if resumed_from is not None and run.ctx.is_main:
        # The steps after this position are done again: their earlier records are superseded.
        MetricsLog(run.run_dir / "metrics.jsonl").write({"mode": "resume", "epoch": state.epoch,
                                                         "iter": state.position, "step": state.schedule.step_count,
                                                         "checkpoint": str(resumed_from)})


# --------------------------------------------------------------------------- one epoch


def _train_epoch(run: Run, state: RunState) -> None:
    """Train epoch ``state.epoch`` from batch ``state.position``; a stop request saves the position and
    raises :class:`TrainingInterrupted`."""
    first = state.position
    # Re-seeding per epoch makes a resumed run draw the same random numbers (dropout, ...) as an
    # uninterrupted one; data augmentation is seeded per sample by the sampler. Ranks get their own stream so
    # they do not share dropout masks. Inside an epoch the saved RNG states are used (see resume_state).
    if first == 0:
        torch.manual_seed(run.recipe.runtime.seed + state.epoch + 1_000_003 * run.ctx.rank)
        if state.mixer is not None:
            state.mixer.set_epoch(state.epoch)
    run.train_loader.sampler.set_epoch(state.epoch, start=first * run.recipe.data.loader.batch_size)
    stopped_at = train_one_epoch(run, state, after_step=_after_step)
    if stopped_at is not None:  # Ctrl-C, SIGTERM, SIGUSR1: keep the exact position, then stop
        _save_position_and_stop(run, state, stopped_at)
    _check_finite_weights(state.raw_model, state.epoch)
    state.epoch, state.position = state.epoch + 1, 0


def train_one_epoch(run: Run, state: RunState,
                    after_step: Callable[[Run, RunState, int], bool] | None = None) -> int | None:
    """One pass over ``run.train_loader`` (its sampler skips the ``state.position`` batches done already): an
    optimizer step every ``optim.accumulate_steps`` batches; records every ``runtime.log_interval`` batches.

    Args:
        run: The loader, loss, device input and precision.
        state: The model, optimizer, schedule, scaler, EMA and mixer to train with, and the epoch.
        after_step: Called with the number of batches done after every optimizer step but the epoch's last;
            when it says yes the epoch ends there.

    Returns:
        The number of this epoch's batches done when ``after_step`` ended it early, else None.
    """
    recipe, device, model = run.recipe, run.device, state.model
    optimizer, scaler, schedule = state.optimizer, state.scaler, state.schedule
    accumulate, clip = recipe.optim.accumulate_steps, recipe.optim.clip_grad
    ema_interval = recipe.ema.interval if recipe.ema else 1
    n_batches = state.position + len(run.train_loader)
    # The last accumulation group of an epoch may be short; its losses are divided by its real size.
    full_groups_end = n_batches - n_batches % accumulate
    meter = _EpochMeter(run, state, n_batches)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    for batch_index, (images, targets) in enumerate(meter.timed(run.train_loader), start=state.position + 1):
        images, targets = run.inputs(images, targets, device, dtype=run.autocast_dtype,
                                     channels_last=run.channels_last)
        targets = targets.to(device, non_blocking=True)
        if state.mixer is not None:  # Mixup/CutMix/ResizeMix: mixed images, soft targets
            images, targets = state.mixer(images, targets)

        steps_now = batch_index % accumulate == 0 or batch_index == n_batches
        # Under DDP, gradients of the batches before the group's last one stay local (no all-reduce).
        local_only = run.ctx.world_size > 1 and not steps_now and hasattr(model, "no_sync")
        with model.no_sync() if local_only else contextlib.nullcontext():
            with torch.autocast(device.type, dtype=run.autocast_dtype, enabled=run.autocast_dtype is not None):
                loss = run.criterion(model(images), targets)
            group = accumulate if batch_index <= full_groups_end else n_batches - full_groups_end
            scaler.scale(loss if group == 1 else loss / group).backward()  # the scaler is a no-op without fp16
        meter.add_loss(loss)

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
            meter.lr = schedule.current_lr()  # the lr this step used
            schedule.step()
            if state.ema is not None and schedule.step_count % ema_interval == 0:
                state.ema.update()

        meter.batch_done(batch_index, len(targets))
        if steps_now and after_step is not None and batch_index < n_batches and after_step(run, state, batch_index):
            return batch_index  # after a whole optimizer step, so the saved state is consistent
    return None


class _EpochMeter:
    """The mean loss, lr, step time and throughput of the batches since the last record; writes a ``train``
    record every ``runtime.log_interval`` batches (and at the epoch's end) and drives the progress bar."""

    def __init__(self, run: Run, state: RunState, n_batches: int) -> None:
        self.run, self.state, self.n_batches = run, state, n_batches
        self.world = run.ctx.world_size
        loader = run.train_loader
        self.task = run.progress.add_task(f"epoch {state.epoch + 1}/{run.recipe.runtime.epochs}",
                                          total=loader.sampler.per_replica() * self.world,
                                          completed=state.position * loader.batch_size * self.world, status="")
        # The loss is summed on the device and read only at log intervals: reading it every step would force
        # a GPU sync per step.
        self.loss_sum = torch.zeros((), device=run.device)
        self.lr = state.schedule.current_lr()
        self._reset()

    def _reset(self) -> None:
        self.batches, self.images, self.data_time = 0, 0, 0.0
        self.start = time.perf_counter()

    def timed(self, loader: Any) -> Any:
        """``loader``'s batches, adding the time spent waiting for each to ``data_time``."""
        fetch_start = time.perf_counter()
        for batch in loader:
            self.data_time += time.perf_counter() - fetch_start
            yield batch
            fetch_start = time.perf_counter()

    def add_loss(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach()

    def batch_done(self, batch_index: int, batch_size: int) -> None:
        """Count a finished batch of this process; write the record when one is due."""
        self.batches += 1
        self.images += batch_size * self.world
        self.run.progress.advance(self.task, batch_size * self.world)
        if batch_index % self.run.recipe.runtime.log_interval == 0 or batch_index == self.n_batches:
            self._write(batch_index)

    def _write(self, batch_index: int) -> None:
        # Every rank reduces the same loss, so a NaN on one stops them all at the same step.
        mean_loss = float(D.all_reduce_sum(self.loss_sum, self.run.ctx)) / (self.batches * self.world)
        epoch = self.state.epoch + 1
        if not math.isfinite(mean_loss):
            raise TrainingDivergedError(
                f"loss became {mean_loss} at epoch {epoch}, step {batch_index}; stopped. The last good "
                f"checkpoint is kept. Lower optim.lr, add warm-up or gradient clipping, or check the data"
            )
        elapsed = time.perf_counter() - self.start
        record = {"mode": "train", "epoch": epoch, "iter": batch_index, "step": self.state.schedule.step_count,
                  "lr": self.lr, "loss": mean_loss, "time": elapsed / self.batches,
                  "data_time": self.data_time / self.batches, "img_per_s": self.images / max(elapsed, 1e-9)}
        self.run.log.write(record)
        self.run.progress.update(self.task, status=f"loss {mean_loss:.4f}  lr {self.lr:.3g}  "
                                                   f"{record['img_per_s']:.0f} img/s")
        self.loss_sum.zero_()
        self._reset()


def _after_step(run: Run, state: RunState, batch_index: int) -> bool:
    """After each optimizer step inside an epoch: save the recovery file when it is due; whether to stop.

    Every process must stop (and save) at the same step, or the others would wait forever in the next
    collective: they agree on both once per optimizer step (one tiny CPU all-reduce, only with DDP).
    """
    ctx = run.ctx
    due = ctx.is_main and run.recovery_s > 0 and time.monotonic() - state.last_saved >= run.recovery_s  # rank 0 times
    stop_now, save_now = D.any_ranks([run.stop.requested(), due], ctx)
    if save_now and not stop_now:
        rank_states = D.gather_objects(_rank_state(run, state), ctx)
        if ctx.is_main:
            save_checkpoint(_checkpoint(run, state, position=batch_index, rank_states=rank_states), run.recovery_path)
        state.last_saved = time.monotonic()
    return stop_now


def _save_position_and_stop(run: Run, state: RunState, stopped_at: int) -> NoReturn:
    """Save the position inside the epoch to ``last.pt`` (every process takes part), then raise
    :class:`TrainingInterrupted` (after requeueing the Slurm job when the recipe asks)."""
    _check_finite_weights(state.raw_model, state.epoch)
    rank_states = D.gather_objects(_rank_state(run, state), run.ctx)
    if run.ctx.is_main:
        _write_last(run, state, _checkpoint(run, state, position=stopped_at, rank_states=rank_states))
    D.barrier(run.ctx)  # no process leaves (and gets the others killed) while rank 0 still writes
    signum = run.stop.signum or signal.SIGINT
    requeued = _requeue(run.recipe.runtime, signum, run.ctx)
    raise TrainingInterrupted(
        f"training interrupted at epoch {state.epoch + 1}, batch {stopped_at}; {run.last_path} holds that "
        f"position; {requeued or 'continue with --resume'}", signum)


# --------------------------------------------------------------------------- end of an epoch


def end_of_epoch(run: Run, state: RunState) -> None:
    """After epoch ``state.epoch`` (counted already): validation and best/EMA-best checkpoints when due, then
    ``last.pt`` (with ``best.pt`` a link to it on a new best) and the ``epoch_N.pt`` copies."""
    rt = run.recipe.runtime
    is_last = state.epoch == rt.epochs
    save_last = state.epoch % rt.checkpoint_interval == 0 or is_last
    new_best = False
    if run.val_loader is not None and (state.epoch % rt.val_interval == 0 or is_last):
        new_best = _validate_and_keep_best(run, state, write_best=not save_last)
    if run.ctx.is_main and save_last:
        _write_last(run, state, _checkpoint(run, state))
        if new_best:  # the same state: one write, as timm's CheckpointSaver does
            link_checkpoint(run.last_path, run.best_path)
        _keep_epoch_checkpoint(run.last_path, state.epoch, rt.keep_checkpoints)


def _validate_and_keep_best(run: Run, state: RunState, write_best: bool) -> bool:
    """Validate the model (and the EMA), log the metrics, save ``best_ema.pt`` on a new EMA best and, with
    ``write_best``, ``best.pt`` on a new best; returns whether the model's metric is a new best."""
    D.broadcast_buffers(state.raw_model, run.ctx)  # score rank 0's BatchNorm statistics, the ones saved
    if state.ema is not None:
        D.broadcast_buffers(state.ema.module, run.ctx)
    state.val_metrics = _validate_and_log(run, state, state.raw_model, "val")
    key, better = _best_rule(run.recipe.runtime, state.val_metrics)
    new_best = key is not None and better(state.val_metrics[key], state.best_metric)
    if new_best:
        state.best_metric = state.val_metrics[key]
        if run.ctx.is_main and write_best:  # else best.pt becomes a link to this epoch's last.pt
            save_checkpoint(_checkpoint(run, state), run.best_path)
    if state.ema is not None:
        ema_metrics = _validate_and_log(run, state, state.ema.module, "val_ema")
        if key is not None and better(ema_metrics[key], state.best_ema_metric):
            state.best_ema_metric = ema_metrics[key]
            if run.ctx.is_main:  # the EMA weights as "model": test/infer/export use it as is
                save_checkpoint({**_checkpoint(run, state, metrics=ema_metrics),
                                 "model": state.ema.module.state_dict(), "ema_weights": True}, run.best_ema_path)
    return new_best


def _validate_and_log(run: Run, state: RunState, model: nn.Module, mode: str) -> dict[str, float]:
    """Validate ``model`` and write the ``mode`` record (``val`` or ``val_ema``)."""
    metrics = validate(model, run.val_loader, run.device, len(run.class_names), run.ctx, run.progress,
                       f"{mode.replace('_', ' ')} {state.epoch}", run.autocast_dtype, run.channels_last,
                       inputs=run.inputs)
    run.log.write({"mode": mode, "epoch": state.epoch, "step": state.schedule.step_count, **metrics})
    return metrics


@torch.no_grad()
def validate(model: nn.Module, loader: Any, device: torch.device, num_classes: int, ctx: D.DistContext,
             progress: Any, description: str, autocast_dtype: torch.dtype | None = None,
             channels_last: bool = False, inputs: DeviceInput | None = None) -> dict[str, float]:
    """Metrics of ``model`` on the whole validation set, the same on every process.

    Each process runs its share through :func:`~clsctl.engine.evaluate.forward_pass`; the logits are
    gathered in dataset order with the sampler's padding repeats dropped
    (:func:`~clsctl.engine.distributed.gather_by_index`), and the metrics are computed once from them by
    :func:`~clsctl.engine.metrics.evaluate_logits` (what ``clsctl test`` uses), so a distributed
    validation equals a single-process one.
    """
    inputs = inputs or DeviceInput((0.0,) * 3, (1.0,) * 3)
    task = progress.add_task(description, total=len(loader.sampler) * ctx.world_size, status="")
    # The logits stay on the device until the end: one copy to the host per validation, not one per batch
    # (each would wait for the GPU queue to drain).
    logits, targets = forward_pass(model, loader, device, inputs=inputs, autocast_dtype=autocast_dtype,
                                   channels_last=channels_last, to_host=False,
                                   advance=lambda n: progress.advance(task, n * ctx.world_size))
    # The order this process's loader yielded samples in (asked after the pass: a stream knows it only then).
    indices = [index for index, _ in loader.sampler]
    all_logits, all_targets = D.gather_by_index(indices, torch.cat(logits).cpu(), torch.cat(targets), ctx=ctx)
    output = evaluate_logits(all_logits, all_targets, num_classes)
    if output.excluded and ctx.is_main:
        logger.warning("%d unreadable validation image(s) left out of the metrics", output.excluded)
    shown = "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in list(output.metrics.items())[:3])
    progress.update(task, status=shown)
    return output.metrics


# --------------------------------------------------------------------------- checkpoints


def _checkpoint(run: Run, state: RunState, *, metrics: dict[str, float] | None = None, position: int = 0,
                rank_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything to continue from: ``state.epoch`` finished epochs plus ``position`` batches of the next.

    ``rank_states`` (every process's :func:`_rank_state`, gathered by all of them) is what a position inside
    an epoch needs; at an epoch's end the streams are re-seeded, and rank 0's state is enough.
    """
    own = rank_states[0] if rank_states else {"rng": rng_state(run.device)}
    checkpoint = {"recipe": run.recipe.to_dict(), "class_names": run.class_names,
                  "preprocessing": Preprocessing.from_recipe(run.recipe).to_dict(), "model": state.raw_model.state_dict(),
                  "optimizer": state.optimizer.state_dict(), "schedule": state.schedule.state_dict(),
                  "scaler": state.scaler.state_dict(), "epoch": state.epoch, "rng": own["rng"],
                  "best_metric": state.best_metric, "metrics": state.val_metrics if metrics is None else metrics}
    if position:
        checkpoint["position"] = position
        if "mix_state" in own:
            checkpoint["mix_state"] = own["mix_state"]
        if rank_states and len(rank_states) > 1:
            checkpoint["rank_states"] = rank_states
    if state.ema is not None:
        checkpoint["ema"] = state.ema.state_dict()
        checkpoint["best_ema_metric"] = state.best_ema_metric
    return checkpoint


def _rank_state(run: Run, state: RunState) -> dict[str, Any]:
    """This process's random streams: its RNGs and its batch mixer's generator."""
    own = {"rng": rng_state(run.device)}
    if state.mixer is not None:
        own["mix_state"] = state.mixer.state_dict()
    return own


def _write_last(run: Run, state: RunState, checkpoint: dict[str, Any]) -> None:
    """Write last.pt (rank 0); a recovery file behind it is dropped."""
    save_checkpoint(checkpoint, run.last_path)
    run.recovery_path.unlink(missing_ok=True)
    state.last_saved = time.monotonic()


# --------------------------------------------------------------------------- helpers


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
    # The largest |weight| is finite iff every weight is (NaN propagates; no sum of squares to overflow).
    if params and not bool(torch.isfinite(torch.nn.utils.get_total_norm(params, norm_type=float("inf")))):
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
