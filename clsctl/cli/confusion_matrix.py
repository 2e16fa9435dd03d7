"""``clsctl confusion-matrix``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._render import console, handle_errors


@handle_errors
def confusion_matrix_command(
    predictions: Annotated[Path, typer.Argument(
        help="Predictions JSON from `clsctl test CKPT --out preds.json`.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("confusion_matrix.png"),
    normalize: Annotated[bool, typer.Option("--normalize", help="Rows as % of each true class.")] = False,
    classes: Annotated[Optional[list[str]], typer.Option(
        "--classes", help="Only these classes (one or more names), in this order.", show_default=False)] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
) -> None:
    """Draw the confusion matrix of a predictions file, with the value in every cell."""
    from clsctl.analysis.results import plot_confusion_matrix

    names = [part for value in classes for part in value.split(",") if part] if classes else None
    path, values = plot_confusion_matrix(predictions, out, normalize=normalize, classes=names, title=title)
    console.print(f"{values.shape[0]}x{values.shape[1]} confusion matrix saved to {path}", highlight=False)
