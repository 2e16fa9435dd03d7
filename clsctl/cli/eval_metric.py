"""``clsctl eval-metric``: metrics of a saved predictions file, offline."""

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from clsctl.cli._render import console, handle_errors, metrics_table


class Metric(str, Enum):
    """Metrics of a predictions file (clsctl.engine.metrics.METRICS)."""

    accuracy = "accuracy"
    precision = "precision"
    recall = "recall"
    f1 = "f1"
    confusion_matrix = "confusion_matrix"
    map = "map"
    cp = "cp"
    cr = "cr"
    cf1 = "cf1"
    op = "op"
    or_ = "or"
    of1 = "of1"


def _per_class_table(names: list[str], per_class: dict[str, list[float]]) -> Table:
    columns = [c for c in ("ap", "precision", "recall", "f1", "support") if c in per_class]
    table = Table(title="per class")
    table.add_column("class")
    for column in columns:
        table.add_column(column, justify="right")
    for index, name in enumerate(names):
        cells = [f"{per_class[c][index]:.2f}" if c != "support" else str(per_class[c][index]) for c in columns]
        table.add_row(name, *cells)
    return table


def _confusion_table(names: list[str], matrix: list[list[int]]) -> Table:
    table = Table(title="confusion matrix (rows: true, columns: predicted)")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for name, row in zip(names, matrix):
        table.add_row(name, *(str(v) for v in row))
    return table


@handle_errors
def eval_metric_command(
    predictions: Annotated[Path, typer.Argument(help="Predictions JSON (what `clsctl test --out` writes).",
                                                show_default=False)],
    metric: Annotated[
        Optional[list[Metric]],
        typer.Option("--metric", "-m", case_sensitive=False,
                     help="accuracy, precision, recall, f1, confusion_matrix (single-label); map, cp, cr, cf1, op, "
                     "or, of1 (multi-label). Repeatable. Default: accuracy, or map for multi-label files.",
                     show_default=False),
    ] = None,
    topk: Annotated[Optional[list[int]], typer.Option("--topk", "-k", min=1, help="k of top-k accuracy. Repeatable.",
                                                      show_default="1 and 5")] = None,
    threshold: Annotated[float, typer.Option("--threshold", min=0.0, max=1.0,
                                             help="Multi-label: score at which a class counts as predicted.")] = 0.5,
    label_topk: Annotated[Optional[int], typer.Option("--label-topk", min=1, help="Multi-label: predict each "
                                                      "sample's k best classes instead of thresholding.")] = None,
    per_class: Annotated[bool, typer.Option("--per-class/--no-per-class", help="Show per-class numbers.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the metrics as JSON.")] = None,
) -> None:
    """Evaluate saved predictions offline: top-k accuracy, precision/recall/F1, confusion matrix, mAP, CP..OF1."""
    from clsctl.engine.metrics import evaluate_predictions

    names = [m.value for m in metric] if metric else None
    result = evaluate_predictions(predictions, names, topk=topk or (1, 5), threshold=threshold,
                                  multi_label_topk=label_topk)
    console.print(metrics_table({**result.metrics, "samples": result.num_samples}, title=str(predictions)))
    if per_class and result.per_class:
        console.print(_per_class_table(result.class_names, result.per_class))
    if result.confusion is not None:
        console.print(_confusion_table(result.class_names, result.confusion))
    if out is not None:
        payload = {"metrics": result.metrics, "num_samples": result.num_samples, "class_names": result.class_names,
                   "per_class": result.per_class, "confusion_matrix": result.confusion}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        console.print(f"metrics: {out}")
