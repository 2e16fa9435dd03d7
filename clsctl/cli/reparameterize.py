"""``clsctl reparameterize``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli.completions import complete_checkpoint_path
from rich.table import Table

from clsctl.cli._options import CheckpointArg
from clsctl.cli._render import console, handle_errors, human_count
from clsctl.errors import ClsctlError


@handle_errors
def reparameterize_command(
    checkpoint: CheckpointArg,
    out_arg: Annotated[Optional[Path], typer.Argument(
        metavar="[OUT]", help="Deploy checkpoint to write (or -o; default: <checkpoint>_deploy.pt next to it).",
        show_default=False, autocompletion=complete_checkpoint_path)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Deploy checkpoint to write.",
                                                show_default=False, autocompletion=complete_checkpoint_path)] = None,
    fuse_conv_bn: Annotated[bool, typer.Option(
        "--fuse-conv-bn", help="Also fold every BatchNorm into the conv before it (any CNN).")] = False,
) -> None:
    """Convert a checkpoint to its deploy form (RepVGG/MobileOne; BatchNorm folding for any CNN).

    Folds re-parameterizable blocks (and, with --fuse-conv-bn, every BatchNorm into the conv before it), checks
    on a random input that the outputs are unchanged, and writes a checkpoint that test, infer, vis-cam and
    get-flops load directly.
    """
    from clsctl.deploy.convert import reparameterize_checkpoint

    if out_arg is not None and out is not None and out_arg != out:
        raise ClsctlError(f"two output paths: {out_arg} and --out {out}; give one")
    target = out or out_arg or checkpoint.with_name(f"{checkpoint.stem}_deploy.pt")
    result = reparameterize_checkpoint(checkpoint, target, fuse_conv_bn=fuse_conv_bn)
    table = Table(title=f"{result.model_name}: training form -> deploy form")
    for column in ("", "before", "after"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("params", human_count(result.params_before), human_count(result.params_after))
    table.add_row("FLOPs", human_count(result.flops_before), human_count(result.flops_after))
    console.print(table)
    shape = "x".join(str(s) for s in result.input_shape)
    check = result.comparison
    console.print(f"re-parameterized blocks: {len(result.reparameterized)}; conv+BN pairs folded: "
                  f"{len(result.fused)}", highlight=False)
    console.print(f"max abs diff on a random {shape} input: {check.max_abs_diff:.3g} "
                  f"(tolerance {check.tolerance:.3g}, largest output {check.scale:.3g})", highlight=False)
    console.print(f"wrote {result.out}", highlight=False)
