"""``clsctl vis-cam`` (alias ``cam``)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import ModelOpt
from clsctl.cli._render import console, err_console, handle_errors
from clsctl.errors import ClsctlError


def _split_commas(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part for value in values for part in value.split(",") if part]


@handle_errors
def vis_cam_command(
    image: Annotated[Optional[Path], typer.Argument(help="Image file.", show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="A clsctl checkpoint.")] = None,
    model: ModelOpt = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Weights file for --model.")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Published ImageNet weights for --model.")] = False,
    method: Annotated[str, typer.Option(
        "--method", help="GradCAM, GradCAM++, XGradCAM, EigenCAM, EigenGradCAM, LayerCAM, HiResCAM, ScoreCAM or "
                         "AblationCAM (any case).")] = "GradCAM",
    target_layers: Annotated[Optional[list[str]], typer.Option(
        "--target-layers", help="Layer name(s), one or more (default: the family's CAM layer).",
        show_default=False)] = None,
    preview_model: Annotated[bool, typer.Option("--preview-model", help="List the layer names and exit.")] = False,
    target_category: Annotated[Optional[str], typer.Option(
        "--target-category", help="Class index or name to explain (default: the predicted class).")] = None,
    aug_smooth: Annotated[bool, typer.Option("--aug-smooth", help="Average over flips and scalings.")] = False,
    eigen_smooth: Annotated[bool, typer.Option("--eigen-smooth", help="Keep the first principal component.")] = False,
    save_path: Annotated[Optional[Path], typer.Option(
        "--save-path", help="PNG to write (default: cam_<image>_<method>.png).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Class activation map of a checkpoint or model on an image: original and overlay side by side."""
    from clsctl.analysis.cam import list_layers, load_source, visualize_cam

    if (checkpoint is None) == (model is None):
        raise ClsctlError("give exactly one of --checkpoint or --model")
    if checkpoint is not None and (weights is not None or pretrained):
        raise ClsctlError("--weights and --pretrained go with --model, not --checkpoint")
    if preview_model:
        from rich.table import Table

        source = load_source(checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained)
        table = Table(title=f"layers of {source.model_name}")
        table.add_column("name")
        table.add_column("type")
        for name, kind in list_layers(source.model):
            table.add_row(name, kind)
        console.print(table)
        return
    if image is None:
        raise ClsctlError("give an image (or --preview-model to list the layers)")
    result = visualize_cam(image, checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained,
                           method=method, target_layers=_split_commas(target_layers), target_category=target_category,
                           aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, save_path=save_path, device=device)
    if result.warning:
        err_console.print(f"[yellow]warning:[/] {result.warning}", highlight=False)
    console.print(f"predicted {result.predicted_name} ({result.score:.3f}); {result.method} of {result.target_name} "
                  f"at {', '.join(result.target_layers)}", highlight=False)
    console.print(f"saved {result.save_path}", highlight=False)
