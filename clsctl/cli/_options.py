"""Options shared by several commands."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

# Shell completion reads the generated model-name index; nothing in completions imports torch.
from clsctl.cli.completions import complete_model_name, complete_recipe_path


RecipeArg = Annotated[
    Path, typer.Argument(help="Recipe YAML file.", show_default=False, autocompletion=complete_recipe_path)
]
CheckpointArg = Annotated[Path, typer.Argument(help="A clsctl checkpoint (.pt).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a recipe value: path.to.key=value (YAML value; list indices allowed). "
                 "Repeatable.", show_default=False),
]
DeviceOpt = Annotated[
    Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N (default: the recipe's runtime.device).")
]
ModelDeviceOpt = Annotated[
    Optional[str], typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.", show_default=False)
]
WorkDirOpt = Annotated[Optional[Path], typer.Option("--work-dir", "-w", help="Run folder (default: runtime.work_dir).")]
ModelOpt = Annotated[
    Optional[str], typer.Option("--model", "-m", help="Registered model name.", autocompletion=complete_model_name)
]


class Split(str, Enum):
    """A dataset split of a recipe."""

    train = "train"
    val = "val"
    test = "test"


PhaseOpt = Annotated[Split, typer.Option("--phase", "-p", help="Split of the recipe.")]
