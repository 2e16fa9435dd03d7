"""``clsctl list-models``."""

from typing import Annotated, Optional

import typer
from rich.table import Table

from clsctl.cli._render import console, handle_errors, human_count


@handle_errors
def list_models_command(
    pattern: Annotated[Optional[str], typer.Argument(help="Wildcard, e.g. 'resnet*' (a plain word matches names containing it).")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Only models with published weights.")] = False,
    reparameterizable: Annotated[bool, typer.Option("--reparameterizable", help="Only models with a deploy form.")] = False,
) -> None:
    """List registered models with family, parameters, FLOPs and input size."""
    from clsctl.models import list_models, model_info

    names = list_models(pattern, pretrained=pretrained, reparameterizable=reparameterizable)
    table = Table(title=f"{len(names)} models" + (f" matching '{pattern}'" if pattern else ""))
    widest = max((len(n) for n in names), default=4)
    table.add_column("name", no_wrap=True, min_width=widest)  # names are what users copy: never cut them
    for column, justify in (("family", "left"), ("params", "right"), ("FLOPs", "right"), ("input size", "right"),
                            ("pretrained", "center")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name in names:
        meta = model_info(name)
        table.add_row(name, meta.family, human_count(meta.num_params), human_count(meta.flops),
                      "x".join(str(s) for s in meta.input_size), "yes" if meta.has_pretrained else "")
    console.print(table)
