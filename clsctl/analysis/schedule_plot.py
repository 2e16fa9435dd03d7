"""``vis-scheduler``: the learning-rate (momentum, weight-decay) curve a recipe's schedule produces, per iteration.

The curve comes from the very scheduler class training uses (:class:`clsctl.engine.optim.LrSchedule`), stepped on
a dummy optimizer, so warm-up and chained schedules look exactly as training will apply them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clsctl.analysis._draw import pyplot, save_figure
from clsctl.errors import ClsctlError
from clsctl.recipe import Recipe

PARAMS = ("lr", "momentum", "weight_decay")


@dataclass
class ScheduleCurve:
    """Values of one optimizer setting over a run.

    ``values[i]`` is the value iteration ``i + 1`` uses, i.e. the one training logs with ``step == i + 1``.
    """

    param: str
    values: list[float]
    steps_per_epoch: int
    epochs: int
    dataset_size: int
    gpus: int
    accumulate_steps: int = 1
    lr_scale: float = 1.0  # runtime.auto_scale_lr's factor on every lr (1 when off)


def steps_per_epoch(dataset_size: int, batch_size: int, gpus: int = 1, drop_last: bool = False,
                    accumulate_steps: int = 1) -> int:
    """Optimizer steps per epoch, as training takes them.

    Each of ``gpus`` processes gets ``ceil(dataset_size / gpus)`` samples (the sampler pads), batched by
    ``batch_size``; every ``accumulate_steps`` batches make one step (a shorter last group too). The global
    batch is therefore ``batch_size * gpus * accumulate_steps``.
    """
    per_process = -(-dataset_size // gpus)
    batches = per_process // batch_size if drop_last else -(-per_process // batch_size)
    return max(-(-batches // accumulate_steps), 1)


def _momentum(group: dict) -> float:
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:  # Adam-style: beta1 plays the role of momentum
        return float(group["betas"][0])
    raise ClsctlError("the recipe's optimizer has no momentum (nor betas) to plot")


def schedule_curve(recipe: Recipe, param: str = "lr", *, dataset_size: int | None = None,
                   gpus: int = 1) -> ScheduleCurve:
    """Step the recipe's schedule through the whole run without training.

    Args:
        recipe: Validated recipe.
        param: ``lr``, ``momentum`` (beta1 for Adam-style optimizers) or ``weight_decay`` (of parameters with
            full decay).
        dataset_size: Training samples; when None, the train split is scanned (no images are decoded).
        gpus: Processes sharing each global batch; divides the steps per epoch.

    Gradient accumulation (``optim.accumulate_steps``) and ``runtime.auto_scale_lr`` act as in training: fewer
    steps per epoch, and every lr scaled by global batch / ``optim.base_batch_size``.
    """
    import torch

    from clsctl.engine.optim import LrSchedule, auto_lr_scale, build_optimizer

    if param not in PARAMS:
        raise ClsctlError(f"unknown parameter '{param}'; choose lr, momentum or weight_decay")
    if gpus < 1:
        raise ClsctlError(f"--gpus must be at least 1, got {gpus}")
    if dataset_size is None:
        from clsctl.data.datasets import build_dataset
        from clsctl.engine.build import dataset_config

        dataset_size = len(build_dataset(dataset_config(recipe, "train")))
    if dataset_size < 1:
        raise ClsctlError(f"dataset size must be at least 1, got {dataset_size}")
    loader = recipe.data.loader
    accumulate = recipe.optim.accumulate_steps
    per_epoch = steps_per_epoch(dataset_size, loader.batch_size, gpus, loader.drop_last, accumulate)
    epochs = recipe.runtime.epochs
    lr_scale = auto_lr_scale(recipe, loader.batch_size * gpus * accumulate)
    optimizer = build_optimizer(torch.nn.Linear(1, 1), recipe.optim, lr_scale=lr_scale)
    schedule = LrSchedule(optimizer, recipe.schedule, per_epoch, epochs)
    values = []
    for _ in range(per_epoch * epochs):
        group = optimizer.param_groups[0]
        values.append(float(group[param]) if param in ("lr", "weight_decay") else _momentum(group))
        # Training reads the value, runs the step, then advances the schedule: same order here.
        optimizer.step()
        schedule.step()
    return ScheduleCurve(param, values, per_epoch, epochs, dataset_size, gpus, accumulate, lr_scale)


def plot_schedule(curve: ScheduleCurve, out: str | Path, *, title: str | None = None,
                  window_size: tuple[float, float] = (12, 7)) -> Path:
    """Plot the curve against iterations (epochs on the top axis) and save it as PNG.

    Args:
        curve: From :func:`schedule_curve`.
        out: PNG path.
        title: Figure title (default: names the parameter and the run length).
        window_size: Figure width and height in inches.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=window_size, dpi=100)
    steps = range(1, len(curve.values) + 1)
    ax.plot(steps, curve.values, linewidth=1.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel(curve.param)
    ax.set_xlim(0, len(curve.values) + 1)
    ax.grid(True, alpha=0.3)
    per_epoch = curve.steps_per_epoch
    top = ax.secondary_xaxis("top", functions=(lambda x: x / per_epoch, lambda e: e * per_epoch))
    top.set_xlabel("epoch")
    details = f" on {curve.gpus} GPUs" if curve.gpus > 1 else ""
    if curve.accumulate_steps > 1:
        details += f", {curve.accumulate_steps} batches a step"
    if curve.lr_scale != 1.0:
        details += f", lr x {curve.lr_scale:.4g}"
    ax.set_title(title or f"{curve.param} schedule: {curve.epochs} epochs x {per_epoch} iterations "
                          f"({curve.dataset_size} images{details})")
    out = save_figure(fig, out)
    return out
