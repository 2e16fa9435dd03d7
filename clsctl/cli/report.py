"""``clsctl report``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import CheckpointArg, DeviceOpt, SetOpt, Split
from clsctl.cli._render import console, handle_errors, metrics_table
from clsctl.cli.vis_cam import Method


@handle_errors
def report_command(
    checkpoint: CheckpointArg,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Image folder to evaluate instead of the recipe's split.")
    ] = None,
    split: Annotated[Split, typer.Option("--split", help="Split to evaluate (test falls back to val).")] = Split.test,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (index.html, PNGs, JSON).")] = Path("report"),
    overrides: SetOpt = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Override the batch size.")] = None,
    device: DeviceOpt = None,
    examples: Annotated[int, typer.Option(
        "--examples", min=0, help="Pictures of confident mistakes and of unsure correct predictions (each).")] = 8,
    cam_method: Annotated[Method, typer.Option("--cam-method", case_sensitive=False,
                                               help="CAM method of the example overlays.")] = Method.gradcam,
    bench_iters: Annotated[int, typer.Option(
        "--bench-iters", min=0, help="Timed iterations of the speed measurement (0: skip it).")] = 20,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not draw progress bars.")] = False,
) -> None:
    """Evaluation report of a checkpoint as one self-contained HTML page: model card, metrics, confusion,
    calibration, examples with CAM overlays, speed on this machine."""
    from clsctl.analysis.report import report

    result = report(checkpoint, split=split.value, data_root=data_root, out=out, overrides=overrides or (),
                    device=device, batch_size=batch_size, examples=examples, cam_method=cam_method.value,
                    bench_iters=bench_iters,
                    show_progress=not no_progress)
    console.print(metrics_table({**result.metrics, "ECE (%)": result.ece, "samples": result.num_samples},
                                title=str(checkpoint)))
    if result.speed:
        console.print(f"{result.speed['images_per_second']:,.1f} img/s at batch {result.speed['batch_size']}, "
                      f"{result.speed['latency_ms']:.2f} ms latency at batch 1 on {result.speed['device']}",
                      highlight=False)
    console.print(f"report: {result.html}", highlight=False)
