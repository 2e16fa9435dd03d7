"""``clsctl analyze-results``."""

from pathlib import Path
from typing import Annotated

import typer

from clsctl.cli._options import SetOpt
from clsctl.cli._render import console, handle_errors


@handle_errors
def analyze_results_command(
    source: Annotated[Path, typer.Argument(
        help="Recipe or checkpoint: its test pipeline prepares the images for display.", show_default=False)],
    predictions: Annotated[Path, typer.Argument(
        help="Predictions JSON from `clsctl test CKPT --out preds.json`.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (success/ and fail/).")] = Path("results"),
    topk: Annotated[int, typer.Option("--topk", "-k", min=1, help="Images per group.")] = 20,
    rescale: Annotated[float, typer.Option(
        "--rescale-factor", "-r", min=0.01, help="Scale images up (nearest neighbour).")] = 1.0,
    overrides: SetOpt = None,
) -> None:
    """Save the most confident correct and wrong predictions as images with true and predicted labels."""
    from clsctl.analysis.results import analyze_results

    written = analyze_results(predictions, out, source=source, topk=topk, rescale_factor=rescale,
                              overrides=overrides or ())
    for group, files in written.items():
        console.print(f"{group}: {len(files)} images in {out / group}", highlight=False)
