"""``clsctl test``."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from clsctl.cli._options import DeviceOpt, ModelOpt, SetOpt, Split
from clsctl.cli._render import console, handle_errors, metrics_table, per_class_table

MODEL, DIST = "Model by name (no checkpoint)", "Test-time augmentation and several processes"


class TTA(str, Enum):
    """Test-time augmentation modes."""

    flip = "flip"
    five_crop = "five-crop"
    ten_crop = "ten-crop"


@handle_errors
def test_command(
    checkpoint: Annotated[
        Optional[Path], typer.Argument(help="A clsctl checkpoint (.pt) or export (.safetensors, .onnx, .pt2, "
                                            "OpenVINO .xml, TorchScript); or give --model.", show_default=False)
    ] = None,
    model: ModelOpt = None,
    pretrained: Annotated[
        bool, typer.Option("--pretrained", help="The model's published weights (torch.hub's cache; timm's for "
                           "timm/ models).", rich_help_panel=MODEL)
    ] = False,
    weights: Annotated[
        Optional[Path], typer.Option("--weights", help="Weights file for --model (state dict; a clsctl checkpoint or "
                                     "safetensors export brings its class names and preprocessing).",
                                     show_default=False, rich_help_panel=MODEL)
    ] = None,
    num_classes: Annotated[
        Optional[int], typer.Option("--num-classes", min=1, help="Classifier size of --model (default: the "
                                    "variant's; 1000 maps the dataset's classes onto ImageNet-1k).",
                                    rich_help_panel=MODEL)
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Image folder to test on: <class>/<image> folders, or an "
                                     "ImageNet-style folder with meta/<split>.txt (with --model); for a checkpoint, "
                                     "instead of the recipe's.")
    ] = None,
    split: Annotated[Split, typer.Option("--split", help="Split to evaluate (test falls back to val).")] = Split.test,
    overrides: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write per-sample predictions: JSON (path, label, top-k) and a .scores.npy beside it.")
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", "-b", min=1, help="Images per batch (per process).")
    ] = None,
    device: DeviceOpt = None,
    tta: Annotated[
        Optional[TTA], typer.Option("--tta", help="Average the class probabilities of several views of each image.",
                                    case_sensitive=False, rich_help_panel=DIST)
    ] = None,
    gpus: Annotated[
        Optional[int], typer.Option("--gpus", min=1, help="Processes to start on this machine, one per GPU (with "
                                    "--device cpu: CPU processes on gloo); each image is evaluated once.",
                                    rich_help_panel=DIST)
    ] = None,
    per_class: Annotated[bool, typer.Option("--per-class/--no-per-class", help="Show the per-class table.")] = True,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not draw progress bars.")] = False,
) -> None:
    """Evaluate a checkpoint, or a model by name: top-1/top-5, per-class precision, recall and F1, img/s.

    [bold]By name[/], without a checkpoint: [bold]--model NAME --pretrained[/] (or [bold]--weights FILE[/]) and
    [bold]--data-root DIR[/]; registered and timm/<name> models. Class folders named by WordNet id (n01440764)
    or class name (tench) map onto an ImageNet model's 1000 classes. Preprocessing is the model's evaluation
    transform (resize, centre crop, interpolation, mean/std); change it with --set, e.g.
    [bold]-s data.test.pipeline.0.size=256 -s data.mean=[0.5,0.5,0.5][/].

    [bold]From other tools[/]:
      MegEngine  [dim]python test.py --arch resnet18 --ngpus 8 -d /data/imagenet[/]
      clsctl     clsctl test --model resnet18 --pretrained --data-root /data/imagenet --split val --gpus 8
      MMPretrain [dim]bash tools/dist_test.sh CONFIG CKPT 8 [--tta][/]
      clsctl     clsctl test best.pt --gpus 8 [--tta flip]
    Processes started by torchrun or srun (torchrun --nproc-per-node 8 -m clsctl test ...) join one run.
    """
    from clsctl.engine.evaluate import evaluate
    from clsctl.engine.launch import is_worker_process, launch_evaluation

    kwargs = dict(source=checkpoint, model=model, pretrained=pretrained, weights=weights,
                  num_classes=num_classes, split=split.value, data_root=data_root, overrides=list(overrides or ()),
                  device=device, batch_size=batch_size, out=out, tta=None if tta is None else tta.value,
                  show_progress=not no_progress)
    result = launch_evaluation(gpus, **kwargs) if gpus is not None else evaluate(**kwargs)
    if result is None or is_worker_process():  # torchrun/srun: rank 0 reports
        return
    rows = _result_rows(result)
    console.print(metrics_table(rows, title=str(checkpoint if checkpoint is not None else model)))
    if per_class:
        console.print(per_class_table(result.class_names, result.per_class))
    _print_notes(result, out)


def _result_rows(result: Any) -> dict[str, object]:
    """The metric table's rows: the metrics, then what ran (classes, TTA, preprocessing, overrides, speed)."""
    rows: dict[str, object] = {**result.metrics, "samples": result.num_samples}
    if result.label_map is not None and len(result.class_names) < len(result.model_class_names):
        rows["classes"] = f"{len(result.class_names)} of the model's {len(result.model_class_names)} (metrics over these)"
    rows.update({"tta": f"{result.tta} (mean of probabilities)" if result.tta else "none",
                 "preprocessing": result.preprocessing,
                 "throughput (img/s)": f"{result.throughput:.1f}", "processes": result.processes})
    if result.overrides:
        rows["overrides (--set)"] = ", ".join(result.overrides)
    return rows


def _print_notes(result: Any, out: Path | None) -> None:
    """Unreadable images left out, and where the predictions went."""
    if result.excluded:
        console.print(f"[yellow]warning:[/] {result.excluded} unreadable image(s) left out of the metrics"
                      + (f" (listed under \"excluded\" in {out})" if out is not None else ""))
    if out is not None:
        from clsctl.engine.predictions import scores_path

        console.print(f"predictions: {out} (scores: {scores_path(out)})", highlight=False)
