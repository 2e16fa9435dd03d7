"""The training loop: plain functions, read top to bottom.

``train(recipe)`` builds everything from the recipe, then alternates ``train_one_epoch`` and validation,
writing ``metrics.jsonl`` records and atomic ``last.pt`` / ``best.pt`` checkpoints in the run folder.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from clsctl.data.loaders import build_loader
from clsctl.engine.build import (build_model, build_split, preprocessing, resolve_device, seed_everything)
from clsctl.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from clsctl.engine.evaluation import run_evaluation
from clsctl.engine.optim import LrSchedule, build_optimizer
from clsctl.engine.progress import make_progress
from clsctl.engine.runlog import MetricsLog
from clsctl.errors import CheckpointError, ClsctlError, TrainingDivergedError
from clsctl.recipe import Recipe

logger = logging.getLogger("clsctl")

BEST_METRIC = "accuracy/top1"


class TrainingInterrupted(ClsctlError):
    """Ctrl-C during training; ``last.pt`` holds the last completed epoch."""

    exit_code = 130


@dataclass
class TrainResult:
    """Where a run left its files, and how it ended."""

    work_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_metric: float | None
    epochs: int
    val_metrics: dict[str, float] = field(default_factory=dict)


def build_criterion(recipe: Recipe) -> nn.Module:
    """The loss of the recipe's ``loss`` section."""
    return nn.CrossEntropyLoss(label_smoothing=recipe.loss.label_smoothing)


def rng_state() -> dict[str, Any]:
    """Every RNG's state, as data ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(recipe: Recipe, work_dir: str | Path | None = None, *, resume: bool | str | Path = False,
          device: str | None = None, show_progress: bool = True) -> TrainResult:
    """Train the recipe's model; the run folder gets ``recipe.yaml``, ``metrics.jsonl`` and checkpoints.

    Args:
        recipe: Validated recipe.
        work_dir: Run folder (default: ``runtime.work_dir``).
        resume: ``True`` resumes the run folder's ``last.pt``; a path resumes that checkpoint.
        device: Overrides ``runtime.device``.
        show_progress: Draw the rich progress bar.

    Raises:
        TrainingDivergedError: The loss became NaN or infinite (the last good checkpoint is kept).
        TrainingInterrupted: Ctrl-C; resume with ``resume=True``.
    """
    rt = recipe.runtime
    run_dir = Path(work_dir or rt.work_dir or "runs/run")
    dev = resolve_device(device or rt.device)
    on_cuda = dev.type == "cuda"
    use_amp = rt.amp and on_cuda  # fp16 autocast is a CUDA feature; on the CPU it would only slow down
    channels_last = rt.channels_last and on_cuda
    seed_everything(rt.seed, rt.deterministic)

    # Data: the train split defines the classes; validation must use the same ones.
    train_set = build_split(recipe, "train")
    class_names = train_set.classes
    val_set = build_split(recipe, "val") if recipe.data.val is not None else None
    if val_set is not None and val_set.classes != class_names:
        raise ClsctlError(f"val classes {val_set.classes} differ from train classes {class_names}")
    pin = recipe.data.loader.pin_memory if recipe.data.loader.pin_memory is not None else on_cuda
    train_loader = build_loader(train_set, recipe.data.loader, train=True, seed=rt.seed, pin_memory=pin)
    val_loader = build_loader(val_set, recipe.data.loader, train=False, pin_memory=pin) if val_set else None

    # Model, optimizer, schedule. The model is built under the run's seed so its init is reproducible.
    torch.manual_seed(rt.seed)
    model = build_model(recipe, len(class_names)).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe.optim)
    schedule = LrSchedule(optimizer, recipe.schedule, len(train_loader), rt.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = build_criterion(recipe)

    start_epoch, best_metric = 0, None
    if resume:
        path = latest_checkpoint(run_dir) if resume is True else Path(resume)
        ckpt = load_checkpoint(path)
        if ckpt["recipe"]["model"]["name"] != recipe.model.name:
            raise CheckpointError(f"{path} holds a {ckpt['recipe']['model']['name']} model, the recipe a {recipe.model.name}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start_epoch, best_metric = int(ckpt["epoch"]), ckpt.get("best_metric")
        logger.info("resumed from %s at epoch %d (lr %.6g)", path, start_epoch, schedule.current_lr())
        if start_epoch >= rt.epochs:
            logger.warning("%s already finished all %d epochs; nothing to train", path, rt.epochs)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
    log = MetricsLog(run_dir / "metrics.jsonl")
    common = {"recipe": recipe.to_dict(), "class_names": class_names, "preprocessing": preprocessing(recipe)}

    def checkpoint(epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        return {**common, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                "rng": rng_state(), "best_metric": best_metric, "metrics": metrics}

    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    val_metrics: dict[str, float] = {}
    try:
        with make_progress(show_progress) as progress:
            for epoch in range(start_epoch, rt.epochs):
                # Re-seeding per epoch makes a resumed run draw the same random numbers (dropout, ...) as an
                # uninterrupted one; data augmentation is seeded per sample by the sampler.
                torch.manual_seed(rt.seed + epoch)
                train_loader.sampler.set_epoch(epoch)
                train_one_epoch(model, train_loader, criterion, optimizer, schedule, scaler, dev, epoch, rt.epochs,
                                log, progress, use_amp=use_amp, channels_last=channels_last,
                                log_interval=rt.log_interval)
                is_last = epoch + 1 == rt.epochs
                if val_loader is not None and ((epoch + 1) % rt.val_interval == 0 or is_last):
                    task = progress.add_task(f"val {epoch + 1}", total=len(val_set), status="")
                    out = run_evaluation(model, val_loader, dev, len(class_names), amp=use_amp,
                                         channels_last=channels_last,
                                         progress=lambda n, t=task: progress.advance(t, n))
                    val_metrics = out.metrics
                    log.write({"mode": "val", "epoch": epoch + 1, "step": schedule.step_count, **val_metrics})
                    progress.update(task, status=f"top1 {val_metrics['accuracy/top1']:.2f}  "
                                                 f"top5 {val_metrics['accuracy/top5']:.2f}  loss {val_metrics['loss']:.4f}")
                    if best_metric is None or val_metrics[BEST_METRIC] > best_metric:
                        best_metric = val_metrics[BEST_METRIC]
                        save_checkpoint(checkpoint(epoch + 1, val_metrics), best_path)
                if (epoch + 1) % rt.checkpoint_interval == 0 or is_last:
                    save_checkpoint(checkpoint(epoch + 1, val_metrics), last_path)
    except KeyboardInterrupt:
        saved = f"; {last_path} holds the last saved epoch" if last_path.exists() else ""
        raise TrainingInterrupted(f"training interrupted{saved}; continue with --resume") from None
    if not last_path.exists():  # resumed a finished run: still leave a last.pt
        save_checkpoint(checkpoint(start_epoch, val_metrics), last_path)
    return TrainResult(run_dir, last_path, best_path if best_path.exists() else None, best_metric, rt.epochs,
                       val_metrics)


def train_one_epoch(model: nn.Module, loader: Any, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: LrSchedule, scaler: torch.amp.GradScaler, device: torch.device, epoch: int, epochs: int,
                    log: MetricsLog, progress: Any, *, use_amp: bool, channels_last: bool, log_interval: int) -> None:
    """One pass over ``loader`` with an optimizer step per batch; records every ``log_interval`` steps."""
    model.train()
    task = progress.add_task(f"epoch {epoch + 1}/{epochs}", total=len(loader.dataset), status="")
    # The loss is summed on the device and read only at log intervals: reading it every step would force
    # a GPU sync per step.
    loss_sum = torch.zeros((), device=device)
    steps, images_seen = 0, 0
    interval_start = time.perf_counter()
    data_time = 0.0
    fetch_start = time.perf_counter()
    for step_in_epoch, (images, targets) in enumerate(loader, start=1):
        data_time += time.perf_counter() - fetch_start
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)

        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            loss = criterion(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # the scaler is a no-op when AMP is off
        scaler.step(optimizer)
        scaler.update()
        lr = schedule.current_lr()  # the lr this step used
        schedule.step()

        loss_sum += loss.detach()
        steps += 1
        images_seen += len(targets)
        progress.advance(task, len(targets))
        if step_in_epoch % log_interval == 0 or step_in_epoch == len(loader):
            mean_loss = float(loss_sum) / steps
            if not math.isfinite(mean_loss):
                raise TrainingDivergedError(
                    f"loss became {mean_loss} at epoch {epoch + 1}, step {step_in_epoch}; stopped. The last good "
                    f"checkpoint is kept. Lower optim.lr, add warm-up, or check the data"
                )
            elapsed = time.perf_counter() - interval_start
            record = {"mode": "train", "epoch": epoch + 1, "iter": step_in_epoch, "step": schedule.step_count,
                      "lr": lr, "loss": mean_loss, "time": elapsed / steps, "data_time": data_time / steps,
                      "img_per_s": images_seen / max(elapsed, 1e-9)}
            log.write(record)
            progress.update(task, status=f"loss {mean_loss:.4f}  lr {lr:.3g}  {record['img_per_s']:.0f} img/s")
            loss_sum.zero_()
            steps, images_seen, data_time = 0, 0, 0.0
            interval_start = time.perf_counter()
        fetch_start = time.perf_counter()
