"""``clsctl vis-cam`` (alias ``cam``)."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._options import ModelDeviceOpt, ModelOpt, SetOpt
from clsctl.cli._render import console, err_console, handle_errors
from clsctl.errors import ClsctlError


class Method(str, Enum):
    """CAM methods of pytorch-grad-cam (the values are clsctl.analysis.cam.METHOD_NAMES)."""

    gradcam = "GradCAM"
    gradcam_pp = "GradCAM++"
    xgradcam = "XGradCAM"
    eigencam = "EigenCAM"
    eigengradcam = "EigenGradCAM"
    layercam = "LayerCAM"
    hirescam = "HiResCAM"
    scorecam = "ScoreCAM"
    ablationcam = "AblationCAM"


def _split_commas(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part for value in values for part in value.split(",") if part]


@handle_errors
def vis_cam_command(
    image: Annotated[Optional[Path], typer.Argument(help="Image file.", show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="A clsctl checkpoint (neither this nor --model: ImageNet-pretrained resnet50).",
        show_default=False)] = None,
    model: ModelOpt = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Weights file for --model.")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Published ImageNet weights for --model.")] = False,
    method: Annotated[Method, typer.Option("--method", case_sensitive=False, help="CAM method (any case).")
                      ] = Method.gradcam,
    target_layers: Annotated[Optional[list[str]], typer.Option(
        "--target-layers", help="Layer name(s), one or more (default: found from the model: the last feature map "
                                "before pooling, or the last block's norm of a token model).",
        show_default=False)] = None,
    preview_model: Annotated[bool, typer.Option("--preview-model", help="List the layer names and exit.")] = False,
    target_category: Annotated[Optional[str], typer.Option(
        "--target-category", help="Class index or name to explain (default: the predicted class).")] = None,
    aug_smooth: Annotated[bool, typer.Option("--aug-smooth", help="Average over flips and scalings.")] = False,
    eigen_smooth: Annotated[bool, typer.Option("--eigen-smooth", help="Keep the first principal component.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="PNG to write (default: cam_<image>_<method>.png).", show_default=False)] = None,
    device: ModelDeviceOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Class activation map of a checkpoint or model on an image: original and overlay side by side.

    Without --checkpoint or --model: ResNet-50 with torchvision's ImageNet weights (from torch.hub's cache).
    """
    from clsctl.analysis.cam import list_layers, visualize_cam
    from clsctl.engine.loading import load_from_options, refuse_other_overrides

    if preview_model:
        from rich.table import Table

        source = load_from_options(checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained)
        table = Table(title=f"layers of {source.model_name}")
        table.add_column("name")
        table.add_column("type")
        for name, kind in list_layers(source.require_pytorch("vis-cam")):
            table.add_row(name, kind)
        console.print(table)
        return
    if image is None:
        raise ClsctlError("give an image (or --preview-model to list the layers)")
    from clsctl.readers import read_image_tensor

    read_image_tensor(image)  # a bad image fails before a model is built
    loaded, rest = load_from_options(checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained,
                                     device=device).with_overrides(list(overrides or ()))
    refuse_other_overrides(rest, "vis-cam")
    result = visualize_cam(image, loaded, method=method.value, target_layers=_split_commas(target_layers),
                           target_category=target_category, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth,
                           save_path=out)
    if result.warning:
        err_console.print(f"[yellow]warning:[/] {result.warning}", highlight=False)
    console.print(f"predicted {result.predicted_name} ({result.score:.3f}); {result.method} of {result.target_name} "
                  f"at {', '.join(result.target_layers)}", highlight=False)
    console.print(f"saved {result.save_path}", highlight=False)
