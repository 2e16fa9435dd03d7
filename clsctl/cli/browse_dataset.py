"""``clsctl browse-dataset``."""

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from clsctl.cli._options import PhaseOpt, RecipeArg, SetOpt, Split
from clsctl.cli._render import console, handle_errors


class Mode(str, Enum):
    """What each saved picture shows."""

    original = "original"
    transformed = "transformed"
    concat = "concat"
    pipeline = "pipeline"


class ChannelOrder(str, Enum):
    """Channel order of the stored images."""

    RGB = "RGB"
    BGR = "BGR"


@handle_errors
def browse_dataset_command(
    recipe: RecipeArg,
    phase: PhaseOpt = Split.train,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNG files.")] = Path("browse"),
    number: Annotated[int, typer.Option("--show-number", "-n", min=1, help="Samples to show.")] = 10,
    mode: Annotated[Mode, typer.Option(
        "--mode", "-m", help="original (the file), transformed (after the pipeline), concat (both side by side) or "
                             "pipeline (after every step).")] = Mode.transformed,
    rescale: Annotated[float, typer.Option(
        "--rescale-factor", "-r", min=0.01,
        help="Scale images up (nearest neighbour), e.g. 8 for 32x32 images.")] = 1.0,
    channel_order: Annotated[ChannelOrder, typer.Option(
        "--channel-order", "-c", case_sensitive=False,
        help="RGB, or BGR to swap red and blue (data stored in BGR order).")] = ChannelOrder.RGB,
    overrides: SetOpt = None,
) -> None:
    """Save dataset samples as PNG files with the class name drawn, before/after the transform pipeline."""
    from clsctl.analysis.browse import browse_dataset
    from clsctl.recipe import load_recipe

    result = browse_dataset(load_recipe(recipe, overrides or ()), out, split=phase.value, num=number,
                            mode=mode.value, rescale_factor=rescale, channel_order=channel_order.value)
    console.print(f"{len(result.files)} of {result.total} {result.split} samples ({mode.value}) saved to {out}",
                  highlight=False)
