"""``clsctl test``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import CheckpointArg, DeviceOpt, SetOpt
from clsctl.cli._render import console, handle_errors, metrics_table, per_class_table


@handle_errors
def test_command(
    checkpoint: CheckpointArg,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Image folder to test on instead of the recipe's.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="test (falls back to val), val or train.")] = "test",
    overrides: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write per-sample predictions as JSON.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Override the batch size.")] = None,
    device: DeviceOpt = None,
    per_class: Annotated[bool, typer.Option("--per-class/--no-per-class", help="Show the per-class table.")] = True,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not draw progress bars.")] = False,
) -> None:
    """Evaluate a checkpoint: top-1/top-5 and per-class precision, recall and F1."""
    from clsctl.engine.testing import evaluate

    if split not in ("train", "val", "test"):
        raise typer.BadParameter("must be train, val or test", param_hint="--split")
    result = evaluate(checkpoint, split=split, data_root=data_root, overrides=overrides or (), device=device,
                      batch_size=batch_size, out=out, show_progress=not no_progress)
    console.print(metrics_table({**result.metrics, "samples": result.num_samples}, title=f"{checkpoint}"))
    if per_class:
        console.print(per_class_table(result.class_names, result.per_class))
    if result.excluded:
        console.print(f"[yellow]warning:[/] {result.excluded} unreadable image(s) left out of the metrics"
                      + (f" (listed under \"excluded\" in {out})" if out is not None else ""))
    if out is not None:
        console.print(f"predictions: {out}")
