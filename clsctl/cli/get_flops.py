"""``clsctl get-flops`` (alias ``flops``)."""

from typing import Annotated, Optional

import typer

from clsctl.cli._options import SetOpt
from clsctl.cli._render import console, handle_errors, human_count
from clsctl.errors import ClsctlError


def split_target(values: list[str], shape: list[str] | None) -> tuple[str, list[int] | None]:
    """The model name/file, and the input size from ``--shape`` (``224``, ``224 256`` or ``224x256``)."""
    if len(values) != 1:
        raise ClsctlError(f"give one model name, recipe or checkpoint (got {len(values)}: {' '.join(values)})")
    if not shape:
        return values[0], None
    sizes = []
    for value in shape:
        for part in value.lower().replace(",", "x").split("x"):
            if not part.strip().isdigit():
                raise typer.BadParameter(f"'{value}' is not a size", param_hint="--shape")
            sizes.append(int(part))
    return values[0], sizes


@handle_errors
def get_flops_command(
    target: Annotated[list[str], typer.Argument(
        help="Registered model name (e.g. convnext-tiny), recipe YAML or checkpoint.", show_default=False)],
    shape: Annotated[Optional[list[str]], typer.Option(
        "--shape", help="Input size: 224 (square) or 224 256 (height width); default the model's.",
        show_default=False)] = None,
    table: Annotated[bool, typer.Option("--table", help="Per-module breakdown.")] = False,
    depth: Annotated[int, typer.Option("--depth", min=1, help="Module depth of --table.")] = 3,
    overrides: SetOpt = None,
    device: Annotated[Optional[str], typer.Option(
        "--device", help="Where the model is traced: auto, cpu, cuda or cuda:N (the count does not depend on it).")
    ] = "cpu",
) -> None:
    """FLOPs, parameters and activations of a model (fvcore), with the operators that were not counted."""
    from clsctl.analysis.flops import count_flops

    source, sizes = split_target(target, shape)
    report = count_flops(source, sizes, table=table, depth=depth, overrides=overrides or (), device=device)
    if report.table:
        console.print(report.table, markup=False, highlight=False)
    console.print(f"model:       {report.model_name}", highlight=False)
    console.print(f"input shape: {tuple(report.input_shape)}", highlight=False)
    console.print(f"flops:       {human_count(report.flops)} ({report.flops:,})", highlight=False)
    console.print(f"params:      {human_count(report.params)} ({report.params:,})", highlight=False)
    console.print(f"activations: {human_count(report.activations)} ({report.activations:,})", highlight=False)
    console.print(f"counted as:  {report.convention}; convolutions, linear layers, matrix products and attention "
                  f"(scaled_dot_product_attention) are counted, most element-wise operators are not", highlight=False)
    if report.uncounted:
        listed = ", ".join(f"{op} x{count}" for op, count in report.uncounted.items())
        console.print(f"not counted: {listed}", highlight=False)
    else:
        console.print("not counted: (none)", highlight=False)
