"""``clsctl browse-dataset``."""

from pathlib import Path
from typing import Annotated

import typer

from clsctl.cli._options import RecipeArg, SetOpt
from clsctl.cli._render import console, handle_errors


@handle_errors
def browse_dataset_command(
    recipe: RecipeArg,
    phase: Annotated[str, typer.Option("--phase", "-p", help="Split: train, val or test.")] = "train",
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for the PNG files.")] = Path("browse"),
    number: Annotated[int, typer.Option("--show-number", "-n", min=1, help="Samples to show.")] = 10,
    mode: Annotated[str, typer.Option(
        "--mode", "-m", help="original (the file), transformed (after the pipeline), concat (both side by side) or "
                             "pipeline (after every step).")] = "transformed",
    rescale: Annotated[float, typer.Option(
        "--rescale-factor", "-r", min=0.01,
        help="Scale images up (nearest neighbour), e.g. 8 for 32x32 images.")] = 1.0,
    channel_order: Annotated[str, typer.Option(
        "--channel-order", "-c", help="RGB, or BGR to swap red and blue (data stored in BGR order).")] = "RGB",
    overrides: SetOpt = None,
) -> None:
    """Save dataset samples as PNG files with the class name drawn, before/after the transform pipeline."""
    from clsctl.analysis.browse import browse_dataset
    from clsctl.recipe import load_recipe

    if phase not in ("train", "val", "test"):
        raise typer.BadParameter("must be train, val or test", param_hint="--phase")
    result = browse_dataset(load_recipe(recipe, overrides or ()), output_dir, split=phase, num=number, mode=mode,
                            rescale_factor=rescale, channel_order=channel_order)
    console.print(f"{len(result.files)} of {result.total} {result.split} samples ({mode}) saved to {output_dir}",
                  highlight=False)
