"""``clsctl train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import DeviceOpt, RecipeArg, SetOpt, WorkDirOpt
from clsctl.cli._render import console, handle_errors


@handle_errors
def train_command(
    recipe: RecipeArg,
    work_dir: WorkDirOpt = None,
    device: DeviceOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Resume from the run folder's last.pt (optimizer, schedule, epoch, RNG).")
    ] = False,
    resume_from: Annotated[
        Optional[Path], typer.Option("--resume-from", help="Resume from this checkpoint instead.", show_default=False)
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Override runtime.seed.")] = None,
    overrides: SetOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not draw progress bars.")] = False,
) -> None:
    """Train a model from a recipe; writes recipe.yaml, metrics.jsonl, last.pt and best.pt to the run folder."""
    from clsctl.engine.loop import train
    from clsctl.recipe import load_recipe

    sets = list(overrides or [])
    if seed is not None:
        sets.append(f"runtime.seed={seed}")
    if work_dir is not None:
        sets.append(f"runtime.work_dir={work_dir}")
    loaded = load_recipe(recipe, sets)
    result = train(loaded, work_dir, resume=resume_from if resume_from is not None else resume, device=device,
                   show_progress=not no_progress)
    best = f"{result.best_metric:.2f}" if result.best_metric is not None else "-"
    console.print(f"run folder: {result.work_dir}")
    console.print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        console.print(f"best checkpoint: {result.best_checkpoint} (val top-1 {best} %)")
    console.print(f"metrics log: {result.work_dir / 'metrics.jsonl'}")
