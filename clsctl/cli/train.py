"""``clsctl train``."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from clsctl.cli._options import DeviceOpt, RecipeArg, SetOpt, WorkDirOpt
from clsctl.cli._render import console, handle_errors

DIST = "Distributed"


ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Resume the run folder (the newest run of the recipe without --work-dir) "
                       "from the newer of last.pt and recovery.pt: optimizer, schedule, position, RNG.")
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="The run folder holds a run: move it to <folder>.old-<timestamp> and "
                       "start afresh (without this, training stops there).")
]
ResumeFromOpt = Annotated[
    Optional[Path], typer.Option("--resume-from", help="Resume from this checkpoint instead.", show_default=False)
]
LoadFromOpt = Annotated[
    Optional[Path],
    typer.Option("--load-from", help="Start from these weights only (optimizer, schedule and epoch start fresh).",
                 show_default=False),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Override runtime.seed.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Do not draw progress bars.")]
GpusOpt = Annotated[
    Optional[int],
    typer.Option("--gpus", min=1, help="Processes to start on this machine (one per GPU; with --device cpu, "
                 "CPU processes on gloo). data.loader.batch_size is per process.", rich_help_panel=DIST),
]
NnodesOpt = Annotated[int, typer.Option("--nnodes", min=1, help="Machines in the run.", rich_help_panel=DIST)]
NodeRankOpt = Annotated[
    int, typer.Option("--node-rank", min=0, help="This machine's index (0: the master).", rich_help_panel=DIST)
]
MasterAddrOpt = Annotated[
    Optional[str], typer.Option("--master-addr", help="Host of node 0 (needed with --nnodes > 1).",
                                rich_help_panel=DIST)
]
MasterPortOpt = Annotated[
    Optional[int], typer.Option("--master-port", help="Rendezvous port on the master (default: free port on "
                                "one node, 29500 on several).", rich_help_panel=DIST)
]
AutoScaleLrOpt = Annotated[
    bool, typer.Option("--auto-scale-lr", help="Scale optim.lr by the global batch / optim.base_batch_size.",
                       rich_help_panel=DIST)
]


@handle_errors
def train_command(
    recipe: RecipeArg,
    work_dir: WorkDirOpt = None,
    device: DeviceOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    resume_from: ResumeFromOpt = None,
    load_from: LoadFromOpt = None,
    seed: SeedOpt = None,
    overrides: SetOpt = None,
    no_progress: NoProgressOpt = False,
    gpus: GpusOpt = None,
    nnodes: NnodesOpt = 1,
    node_rank: NodeRankOpt = 0,
    master_addr: MasterAddrOpt = None,
    master_port: MasterPortOpt = None,
    auto_scale_lr: AutoScaleLrOpt = False,
) -> None:
    """Train a model from a recipe; writes recipe.yaml, metrics.jsonl, last.pt and best.pt to the run folder.

    Several GPUs: [bold]--gpus N[/]; several machines: the same command on each with [bold]--nnodes[/],
    [bold]--node-rank[/], [bold]--master-addr[/] and [bold]--master-port[/]. Processes started by torchrun or
    srun are detected and join one run.
    """
    from clsctl.recipe import load_recipe

    sets = _command_line_sets(overrides, seed=seed, work_dir=work_dir, auto_scale_lr=auto_scale_lr,
                              load_from=load_from)
    loaded = load_recipe(recipe, sets)
    resume_arg = resume_from if resume_from is not None else resume
    if gpus is not None or nnodes > 1:
        from clsctl.engine.distributed import LaunchOptions
        from clsctl.engine.launch import launch_training

        options = LaunchOptions(gpus or 1, nnodes, node_rank, master_addr, master_port)
        result = launch_training(loaded.to_dict(), options, work_dir=work_dir, resume=resume_arg,
                                 overwrite=overwrite, device=device, show_progress=not no_progress)
        if result is None:  # not node 0: rank 0 reports
            console.print(f"node {node_rank} finished")
            return
    else:
        from clsctl.engine.distributed import env_ranks
        from clsctl.engine.loop import train

        result = train(loaded, work_dir, resume=resume_arg, overwrite=overwrite, device=device,
                       show_progress=not no_progress)
        ranks = env_ranks()
        if ranks is not None and ranks[0] != 0:  # started by torchrun/srun: rank 0 reports
            return
    _print_result(result)


def _command_line_sets(overrides: list[str] | None, *, seed: int | None, work_dir: Path | None, auto_scale_lr: bool,
                       load_from: Path | None) -> list[str]:
    """The ``--set`` overrides, then the options that are recipe settings, as ``key=value`` strings."""
    sets = list(overrides or [])
    if seed is not None:
        sets.append(f"runtime.seed={seed}")
    if work_dir is not None:
        sets.append(f"runtime.work_dir={work_dir}")
    if auto_scale_lr:
        sets.append("runtime.auto_scale_lr=true")
    if load_from is not None:
        sets.append(f"runtime.load_from={load_from}")
    return sets


def _print_result(result: Any) -> None:
    """Where the run folder, checkpoints and metrics log are."""
    best = f"{result.best_metric:.4g}" if result.best_metric is not None else "-"
    console.print(f"run folder: {result.work_dir}")
    console.print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        console.print(f"best checkpoint: {result.best_checkpoint} (best {best})")
    if (result.work_dir / "best_ema.pt").exists():
        console.print(f"best EMA checkpoint: {result.work_dir / 'best_ema.pt'}")
    console.print(f"metrics log: {result.work_dir / 'metrics.jsonl'}")
