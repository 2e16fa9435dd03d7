"""``clsctl print-config`` and ``clsctl recipe-schema``."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import RecipeArg, SetOpt
from clsctl.cli._render import console, handle_errors


@handle_errors
def print_config_command(recipe: RecipeArg, overrides: SetOpt = None) -> None:
    """Print the fully resolved recipe (bases merged, overrides applied, defaults filled) as YAML."""
    import yaml

    from clsctl.recipe import load_recipe

    resolved = load_recipe(recipe, overrides or [])
    typer.echo(yaml.safe_dump(resolved.to_dict(), sort_keys=False), nl=False)


@handle_errors
def recipe_schema_command(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here instead of printing.")] = None,
) -> None:
    """Write the JSON Schema of recipes (for editor validation and completion of YAML)."""
    from clsctl.recipe.schema import Recipe

    text = json.dumps(Recipe.model_json_schema(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
