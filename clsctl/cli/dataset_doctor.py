"""``clsctl dataset-doctor``."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import DeviceOpt, RecipeArg, SetOpt, Split
from clsctl.cli._render import console, err_console, handle_errors


class HashKind(str, Enum):
    """Perceptual hashes."""

    phash = "phash"
    dhash = "dhash"


@handle_errors
def dataset_doctor_command(
    recipe: RecipeArg,
    phases: Annotated[Optional[list[Split]], typer.Option(
        "--phase", "-p", help="Splits to examine, in order (train val test); later ones are checked for leakage "
        "into earlier ones. Default: train val.", show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="Trained checkpoint: rank likely label errors from its probabilities.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for doctor.json and index.html.")] = Path("doctor"),
    threshold: Annotated[int, typer.Option(
        "--threshold", "-t", min=0, max=16, help="Near-duplicates: perceptual hashes at most this many bits apart "
        "(of 64).")] = 6,
    hash_kind: Annotated[HashKind, typer.Option("--hash", help="Perceptual hash.")] = HashKind.phash,
    min_class_images: Annotated[int, typer.Option(
        "--min-class-images", min=0, help="Report classes with fewer images than this.")] = 5,
    num_process: Annotated[Optional[int], typer.Option(
        "--num-process", min=1, help="Hashing worker processes (default: CPU count, at most 8).")] = None,
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not draw progress bars.")] = False,
) -> None:
    """Find duplicates, train/val leakage, class imbalance, size outliers, unreadable files and (with a
    checkpoint) likely label errors; exit code 1 when leakage or unreadable files are found."""
    from rich.table import Table

    from clsctl.analysis.doctor import dataset_doctor
    from clsctl.recipe import load_recipe

    loaded = load_recipe(recipe, overrides or ())
    splits = [phase.value for phase in phases] if phases else ["train", "val"]
    result = dataset_doctor(loaded, splits, checkpoint=checkpoint, out=out, threshold=threshold,
                            hash_kind=hash_kind.value, min_class_images=min_class_images, num_process=num_process,
                            device=device, show_progress=not no_progress)
    table = Table(title=f"dataset-doctor: {result.files} files in {result.seconds:.1f} s")
    table.add_column("finding")
    table.add_column("count", justify="right")
    for key, count in result.counts.items():
        style = "red" if count and key in ("leaks", "unreadable") else "yellow" if count else "green"
        table.add_row(key.replace("_", " "), f"[{style}]{count}[/]")
    console.print(table)
    for stats in result.splits.values():
        imbalance = f"{stats.imbalance:.2f}" if stats.imbalance is not None else "a class has no images"
        small = ", ".join(f"{n} ({c})" for n, c in stats.small_classes[:10])
        console.print(f"{stats.split}: {stats.files} images, {len(stats.classes)} classes, imbalance {imbalance}"
                      + (f"; small classes: {small}" if small else ""), highlight=False)
    for leak in result.leaks[:10]:
        console.print(f"[red]leak[/] ({leak['kind']}, {leak['distance']} bits): {leak['held_out']['path']} "
                      f"~ {leak['earlier']['path']}", highlight=False)
    for broken in result.unreadable[:10]:
        console.print(f"[red]unreadable[/]: {broken.path}: {broken.reason}", highlight=False)
    for split, issues in result.label_issues.items():
        for issue in issues[:5]:
            console.print(f"[yellow]label?[/] {split} {issue['path']}: given {issue['given']} "
                          f"(p {issue['p_given']:.2f}), likely {issue['suggested']} (p {issue['p_suggested']:.2f})",
                          highlight=False)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if result.html_path is not None:
        console.print(f"report: {result.html_path} (JSON: {result.json_path})", highlight=False)
    if result.failed:
        raise typer.Exit(1)
