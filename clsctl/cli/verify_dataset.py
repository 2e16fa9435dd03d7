"""``clsctl verify-dataset``."""

from pathlib import Path
from typing import Annotated

import typer

from clsctl.cli._options import PhaseOpt, RecipeArg, SetOpt, Split
from clsctl.cli._render import console, err_console, handle_errors


@handle_errors
def verify_dataset_command(
    recipe: RecipeArg,
    phase: PhaseOpt = Split.train,
    num_process: Annotated[int, typer.Option("--num-process", min=1, help="Worker processes.")] = 1,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Write 'path<TAB>reason' per broken file here.")] = Path("broken_files.log"),
    overrides: SetOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not draw the progress bar.")] = False,
) -> None:
    """Decode every image of a split and list the broken ones; exit code 1 when any is broken."""
    from rich.table import Table

    from clsctl.analysis.verify import verify_dataset
    from clsctl.engine.progress import make_progress
    from clsctl.recipe import load_recipe

    split = phase.value
    loaded = load_recipe(recipe, overrides or ())
    with make_progress(not no_progress) as progress:
        task: list[int] = []
        result = verify_dataset(
            loaded, split, num_process=num_process, out_path=out,
            on_start=lambda total: task.append(progress.add_task(f"verify {split}", total=total, status="")),
            progress=lambda n: progress.advance(task[0], n))
    for skipped in result.skipped:
        err_console.print(f"[yellow]not checked:[/] {skipped.path}: {skipped.reason}", highlight=False)
    if result.ok:
        console.print(f"all {result.checked} images of {split} decode", highlight=False)
        return
    table = Table(title=f"{len(result.broken)} broken of {result.checked} files")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for broken in result.broken:
        table.add_row(broken.path, broken.reason)
    console.print(table)
    if result.log_path is not None:
        console.print(f"list written to {result.log_path}", highlight=False)
    raise typer.Exit(1)
