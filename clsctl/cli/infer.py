"""``clsctl infer``."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import ModelDeviceOpt, ModelOpt, SetOpt
from clsctl.cli._render import console, handle_errors


@handle_errors
def infer_command(
    images: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)],
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="A clsctl checkpoint or export (.safetensors, .onnx, .pt2, OpenVINO .xml, "
                                   "TorchScript); neither this nor --model: ImageNet-pretrained resnet50.",
        show_default=False)] = None,
    model: ModelOpt = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Weights file for --model.")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Published ImageNet weights for --model.")] = False,
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", min=1, help="Classifier size for --model.")] = None,
    topk: Annotated[int, typer.Option("--topk", "-k", min=1, help="Classes shown per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Also write a predictions file (JSON + .scores.npy, as test --out writes).",
        show_default=False)] = None,
    overrides: SetOpt = None,
    device: ModelDeviceOpt = None,
) -> None:
    """Classify images with a checkpoint (or a registered model) and print the top-k classes.

    Without --checkpoint or --model: ResNet-50 with torchvision's ImageNet weights (from torch.hub's cache).
    """
    from clsctl.engine.evaluate import predict

    results = predict(images, checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained,
                      num_classes=num_classes, overrides=list(overrides or ()), topk=topk, device=device, out=out)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    for result in results:
        console.print(f"[bold]{result.path}[/]", highlight=False)
        for rank, (_, name, probability) in enumerate(result.topk):
            console.print(f"  {rank}: class = {name}  with probability = {probability * 100:.1f} %", highlight=False)
    if out is not None:
        console.print(f"predictions: {out}", highlight=False)
