"""``clsctl vis-scheduler``."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import RecipeArg, SetOpt
from clsctl.cli._render import console, handle_errors


class Parameter(str, Enum):
    """The optimizer value to plot."""

    lr = "lr"
    momentum = "momentum"
    weight_decay = "weight_decay"


@handle_errors
def vis_scheduler_command(
    recipe: RecipeArg,
    parameter: Annotated[Parameter, typer.Option(
        "--parameter", "-p", help="Learning rate, momentum (beta1 for Adam-style optimizers) or weight decay.")
    ] = Parameter.lr,
    dataset_size: Annotated[Optional[int], typer.Option(
        "--dataset-size", "-d", min=1, help="Training images (default: count the train split).")] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="Processes sharing each global batch.")] = 1,
    auto_scale_lr: Annotated[bool, typer.Option(
        "--auto-scale-lr", help="Scale optim.lr by the global batch / optim.base_batch_size, as train does.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("schedule.png"),
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
    window_size: Annotated[str, typer.Option("--window-size", help="Figure size WxH in inches.")] = "12x7",
    overrides: SetOpt = None,
) -> None:
    """Plot the learning-rate (or momentum) curve of a recipe's schedule, per iteration, without training."""
    from clsctl.analysis.logs import parse_window_size
    from clsctl.analysis.schedule_plot import plot_schedule, schedule_curve
    from clsctl.recipe import load_recipe

    size = parse_window_size(window_size)
    sets = list(overrides or ())
    if auto_scale_lr:
        sets.append("runtime.auto_scale_lr=true")
    curve = schedule_curve(load_recipe(recipe, sets), parameter.value, dataset_size=dataset_size, gpus=gpus)
    plot_schedule(curve, out, title=title, window_size=size)
    values = curve.values
    console.print(f"{parameter.value}: {curve.epochs} epochs x {curve.steps_per_epoch} iterations = {len(values)} "
                  f"(dataset {curve.dataset_size}, {gpus} GPU(s), {curve.accumulate_steps} batch(es) a step, lr x "
                  f"{curve.lr_scale:.4g}); first {values[0]:.6g}, max {max(values):.6g}, "
                  f"last {values[-1]:.6g}", highlight=False)
    console.print(f"saved {out}", highlight=False)
