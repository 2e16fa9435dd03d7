"""Metrics of saved predictions (the JSON ``clsctl test --out`` writes), without a model or images.

The file holds ``class_names``, ``predictions`` (one dict per sample with ``label`` and ``pred``, or for
multi-label data ``labels``: a list of label indices, ``-1`` entries excluded) and optionally ``scores``
(``N x C``). Metrics needing a ranking (top-k with k > 1, mAP) need ``scores``. The file is read by
:mod:`clsctl.engine.predictions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clsctl.engine.predictions import PredictionTensors, read_prediction_tensors
from clsctl.errors import ClsctlError

SINGLE_LABEL_METRICS = ("accuracy", "precision", "recall", "f1", "confusion_matrix")
MULTI_LABEL_METRICS = ("map", "cp", "cr", "cf1", "op", "or", "of1")
METRICS = SINGLE_LABEL_METRICS + MULTI_LABEL_METRICS


@dataclass
class OfflineMetrics:
    """What :func:`evaluate_predictions` computed."""

    metrics: dict[str, float]
    class_names: list[str]
    num_samples: int
    multi_label: bool
    per_class: dict[str, list[float]] = field(default_factory=dict)
    confusion: list[list[int]] | None = None


def load_predictions(path: str | Path) -> PredictionTensors:
    """Read and check a predictions file (see :func:`clsctl.engine.predictions.read_prediction_tensors`)."""
    return read_prediction_tensors(path)


def evaluate_predictions(path: str | Path, metrics: Sequence[str] | None = None, *, topk: Sequence[int] = (1, 5),
                         threshold: float = 0.5, multi_label_topk: int | None = None) -> OfflineMetrics:
    """Compute the named metrics of a saved predictions file.

    Args:
        path: JSON written by ``clsctl test --out`` (or the same layout).
        metrics: Names from :data:`METRICS`; ``accuracy``, ``precision``, ``recall``, ``f1`` and
            ``confusion_matrix`` are single-label, ``map`` and ``cp``..``of1`` multi-label (``precision``,
            ``recall``, ``f1`` on multi-label files mean CP/OP, CR/OR, CF1/OF1). Default: ``accuracy``, or
            ``map`` for multi-label files.
        topk: The k values of ``accuracy``.
        threshold: Multi-label: a class is predicted when its score is at least this.
        multi_label_topk: Multi-label: predict each sample's k best classes instead of thresholding.
    """
    from clsctl.engine.metrics import confusion_matrix, multilabel_metrics, precision_recall_f1, topk_accuracy

    unknown = [m for m in metrics or () if m.lower() not in METRICS]
    if unknown:
        raise ClsctlError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    saved = load_predictions(path)
    wanted = [m.lower() for m in metrics] if metrics else ["map" if saved.multi_label else "accuracy"]
    result = OfflineMetrics({}, saved.class_names, len(saved.targets), saved.multi_label)
    if saved.multi_label:
        single = [m for m in wanted if m in ("accuracy", "confusion_matrix")]
        if single:
            raise ClsctlError(f"{', '.join(single)} need single-label predictions; this file is multi-label")
        if saved.scores is None:
            raise ClsctlError(f"{path}: multi-label metrics need 'scores'")
        values = multilabel_metrics(saved.scores, saved.targets, threshold=threshold, topk=multi_label_topk)
        aliases = {"precision": ("CP", "OP"), "recall": ("CR", "OR"), "f1": ("CF1", "OF1"), "map": ("mAP",)}
        for name in wanted:
            for key in aliases.get(name, (name.upper(),)):
                result.metrics[key] = values[key]
        result.per_class = {k: values[k] for k in ("ap", "precision", "recall", "f1", "support")}
        return result
    multi = [m for m in wanted if m in MULTI_LABEL_METRICS]
    if multi:
        raise ClsctlError(f"{', '.join(multi)} need multi-label predictions (entries with 'labels' lists)")
    num_classes = len(saved.class_names)
    if "accuracy" in wanted:
        if saved.scores is None:
            if any(k != 1 for k in topk):
                raise ClsctlError(f"{path}: top-k accuracy with k > 1 needs 'scores'")
            result.metrics["accuracy/top1"] = float((saved.preds == saved.targets).double().mean() * 100)
        else:
            for k, value in topk_accuracy(saved.scores, saved.targets, sorted(set(topk))).items():
                result.metrics[f"accuracy/top{k}"] = value
    matrix = confusion_matrix(saved.preds, saved.targets, num_classes)
    prf = precision_recall_f1(matrix)
    for name in ("precision", "recall", "f1"):
        if name in wanted:
            result.metrics[f"{name}/macro"] = prf[f"macro_{name}"]
            result.metrics[f"{name}/micro"] = prf[f"micro_{name}"]
    if any(m in wanted for m in ("precision", "recall", "f1")):
        result.per_class = {k: prf[k] for k in ("precision", "recall", "f1", "support")}
    if "confusion_matrix" in wanted:
        result.confusion = matrix.tolist()
    return result
