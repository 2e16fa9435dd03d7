"""``clsctl export``."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import CheckpointArg
from clsctl.cli._render import console, handle_errors


class ExportFormat(str, Enum):
    """File formats ``clsctl export`` writes."""

    onnx = "onnx"
    torchscript = "torchscript"
    safetensors = "safetensors"


@handle_errors
def export_command(
    checkpoint: CheckpointArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")] = ExportFormat.onnx,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Output file (default: next to the checkpoint, .onnx, .torchscript.pt or .safetensors); "
                            "for safetensors a folder gets model.safetensors + config.json (a Hub repository).",
        show_default=False)] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", min=7, help="ONNX opset (default 18).",
                                                 show_default=False)] = None,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Let the batch size vary.")] = False,
    check: Annotated[bool, typer.Option(
        "--check/--no-check", help="Run the file (onnxruntime for ONNX) and compare with PyTorch.")] = True,
) -> None:
    """Export a checkpoint to ONNX, TorchScript or safetensors, with class names and preprocessing inside.

    The exported file is run (onnxruntime for ONNX; for safetensors, a model rebuilt from the recipe with the
    file's weights) on a random input and compared with PyTorch; the command fails when the outputs differ
    beyond tolerance.
    """
    from clsctl.deploy.export import export_checkpoint

    result = export_checkpoint(checkpoint, fmt.value, out=out, opset=opset, dynamic_batch=dynamic_batch,
                               check=check)
    shape = "x".join(str(s) for s in result.input_shape)
    if result.format == "safetensors":
        console.print(f"wrote {result.path} (safetensors: weights, class names, preprocessing and recipe"
                      f"{'; config.json beside it' if (result.path.parent / 'config.json').is_file() else ''})",
                      highlight=False)
    else:
        console.print(f"wrote {result.path} ({result.format}, {result.exporter} exporter, example input {shape}"
                      f"{', dynamic batch' if dynamic_batch else ''})", highlight=False)
    console.print(f"metadata: {', '.join(result.metadata)}", highlight=False)
    if result.comparison is None:
        console.print("not checked (--no-check)", highlight=False)
        return
    runtime = {"onnx": "onnxruntime", "torchscript": "torch.jit.load",
               "safetensors": "model rebuilt from the file"}[result.format]
    check_shape = "x".join(str(s) for s in result.check_shape or ())
    console.print(f"{runtime} vs PyTorch on a random {check_shape} input: max abs diff "
                  f"{result.comparison.max_abs_diff:.3g} (tolerance {result.comparison.tolerance:.3g})",
                  highlight=False)
