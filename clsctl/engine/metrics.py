"""Classification metrics: on tensors, of a pass's logits (:func:`evaluate_logits`, what training's validation
and ``clsctl test`` report), and of a saved predictions file (:func:`evaluate_predictions`, ``eval-metric``).

Single-label: top-k accuracy, confusion matrix, precision/recall/F1 (per class, macro, micro).
Multi-label: average precision per class and its mean (mAP), and CP/CR/CF1/OP/OR/OF1 at a score threshold or
for the top-k classes of each sample.

Definitions follow MMPretrain (which agree with scikit-learn): precision/recall/F1 of a class that is never
predicted or never present count as 0 (``zero_division=0``); macro averages are plain means over classes
(CF1 is the mean of per-class F1, not the F1 of CP and CR); every value is in percent. In multi-label
targets, ``-1`` marks a label to ignore (a VOC "difficult" object): it counts neither as positive nor as
negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clsctl.errors import ClsctlError


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose target is among the top-k scores, for each k (k capped at the class count)."""
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices
    hits = top.eq(targets[:, None])
    return {k: int(hits[:, : min(k, max_k)].any(dim=1).sum()) for k in ks}


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent for each k (k larger than the class count means every class)."""
    counts = topk_correct(scores, targets, ks)
    total = max(len(targets), 1)
    return {k: 100.0 * hits / total for k, hits in counts.items()}


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``matrix[true, predicted]`` counts."""
    index = targets.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 0 where den is 0."""
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def _prf(tp: torch.Tensor, predicted: torch.Tensor, actual: torch.Tensor) -> tuple[torch.Tensor, ...]:
    precision = _safe_ratio(tp, predicted)
    recall = _safe_ratio(tp, actual)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return precision * 100, recall * 100, f1 * 100


def precision_recall_f1(matrix: torch.Tensor) -> dict[str, Any]:
    """Per-class, macro and micro precision/recall/F1 (in %) from a confusion matrix.

    Micro averages pool every decision; for single-label data they all equal the top-1 accuracy.
    """
    matrix = matrix.double()
    tp = matrix.diag()
    predicted = matrix.sum(0)
    actual = matrix.sum(1)
    precision, recall, f1 = _prf(tp, predicted, actual)
    micro_p, micro_r, micro_f1 = _prf(tp.sum(), predicted.sum(), actual.sum())
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": actual.long().tolist(),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
        "micro_f1": float(micro_f1),
    }


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Average precision of each class (in %), ranking samples by score.

    AP = mean, over the positive samples, of the precision among the samples ranked at or above it. Ignored
    labels (``-1``) are left out of that class's ranking; a class without positives scores 0.

    Args:
        scores: ``(N, C)`` scores (any monotonic scale: logits or probabilities).
        targets: ``(N, C)`` with 1 (positive), 0 (negative) or -1 (ignore).
    """
    scores = scores.double()
    targets = targets.long()
    result = torch.zeros(scores.shape[1], dtype=torch.float64)
    for c in range(scores.shape[1]):
        keep = targets[:, c] != -1
        class_scores, positive = scores[keep, c], targets[keep, c] == 1
        if not positive.any():
            continue
        # Stable sort, so ties keep sample order (scikit-learn treats ties as one threshold; equal with no ties).
        order = torch.sort(class_scores, descending=True, stable=True).indices
        hits = positive[order].double()
        precision_at = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.float64)
        result[c] = (precision_at * hits).sum() / hits.sum() * 100
    return result


def multilabel_predictions(scores: torch.Tensor, *, threshold: float | None = 0.5,
                           topk: int | None = None) -> torch.Tensor:
    """Boolean ``(N, C)`` predictions: scores at or above ``threshold``, or each sample's ``topk`` classes."""
    if topk is not None:
        k = min(topk, scores.shape[1])
        pred = torch.zeros_like(scores, dtype=torch.bool)
        return pred.scatter_(1, scores.topk(k, dim=1).indices, True)
    if threshold is None:
        raise ValueError("give a threshold or topk")
    return scores >= threshold


def multilabel_metrics(scores: torch.Tensor, targets: torch.Tensor, *, threshold: float | None = 0.5,
                       topk: int | None = None) -> dict[str, Any]:
    """mAP, CP/CR/CF1 (per-class means), OP/OR/OF1 (over all decisions) and per-class numbers, in %.

    Args:
        scores: ``(N, C)`` probabilities (sigmoid outputs) when thresholding.
        targets: ``(N, C)`` with 1, 0 or -1 (ignore).
        threshold: A class is predicted when its score is at least this.
        topk: Predict each sample's k best classes instead of thresholding.
    """
    targets = targets.long()
    valid = targets != -1
    pred = multilabel_predictions(scores, threshold=threshold, topk=topk) & valid
    gt = (targets == 1) & valid
    tp = (pred & gt).sum(0).double()
    predicted, actual = pred.sum(0).double(), gt.sum(0).double()
    precision, recall, f1 = _prf(tp, predicted, actual)
    op, orc, of1 = _prf(tp.sum(), predicted.sum(), actual.sum())
    ap = average_precision(scores, targets)
    return {
        "mAP": float(ap.mean()),
        "CP": float(precision.mean()), "CR": float(recall.mean()), "CF1": float(f1.mean()),
        "OP": float(op), "OR": float(orc), "OF1": float(of1),
        "ap": ap.tolist(), "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
        "support": actual.long().tolist(),
    }


# --------------------------------------------------------------------------- metrics of one evaluation pass


@dataclass
class EvalOutput:
    """Metrics of one pass over a dataset, and optionally every prediction."""

    metrics: dict[str, float]
    per_class: dict[str, Any]
    confusion: list[list[int]]
    scores: torch.Tensor | None = None  # (N, C) softmax probabilities, when kept
    targets: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kept: torch.Tensor | None = None  # (N,) bool over the loader's samples: False for the ones left out
    excluded: int = 0  # samples left out of the metrics (unreadable images; see exclude_replaced_samples)


def evaluate_logits(logits: torch.Tensor, targets: torch.Tensor, num_classes: int, *,
                    keep_scores: bool = False) -> EvalOutput:
    """Metrics of ``(N, C)`` logits against ``(N,)`` class indices or ``(N, C)`` multi-hot targets.

    A target of -1 (every label -1 when multi-label) marks a sample to leave out: an unreadable image.
    """
    kept = targets >= 0 if targets.dim() == 1 else (targets != -1).any(dim=1)
    excluded = int((~kept).sum())
    if excluded:
        logits, targets = logits[kept], targets[kept]
    if targets.dim() == 2:  # multi-hot targets (1, 0, -1 = ignore): a multi-label dataset
        output = multilabel_evaluation(logits, targets, keep_scores=keep_scores)
    else:
        output = metrics_from_logits(logits, targets, num_classes, keep_scores=keep_scores)
    output.kept, output.excluded = kept, excluded
    return output


def metrics_from_logits(logits: torch.Tensor, targets: torch.Tensor, num_classes: int, *,
                        keep_scores: bool = False) -> EvalOutput:
    """Single-label metrics of ``(N, C)`` logits against ``(N,)`` class indices."""
    seen = max(len(targets), 1)
    correct = topk_correct(logits, targets, (1, 5))
    metrics = {
        "accuracy/top1": 100.0 * correct[1] / seen,
        "accuracy/top5": 100.0 * correct[5] / seen,
        "loss": float(nn.functional.cross_entropy(logits, targets, reduction="sum")) / seen if len(targets) else 0.0,
    }
    matrix = confusion_matrix(logits.argmax(1), targets, num_classes)
    per_class = precision_recall_f1(matrix)
    for key in ("macro_precision", "macro_recall", "macro_f1"):
        metrics[f"macro/{key.removeprefix('macro_')}"] = per_class[key]
    return EvalOutput(metrics, per_class, matrix.tolist(), logits.softmax(1) if keep_scores else None,
                      targets if keep_scores else None)


def multilabel_evaluation(logits: torch.Tensor, targets: torch.Tensor, *, keep_scores: bool = False) -> EvalOutput:
    """Multi-label metrics (mAP first, so ``save_best: auto`` picks it) of ``(N, C)`` logits against multi-hot
    targets; ``-1`` entries are ignored, as in VOC's "difficult" labels."""
    scores = torch.sigmoid(logits)
    valid = targets != -1
    loss = nn.functional.binary_cross_entropy_with_logits(logits[valid], targets[valid].float()) if valid.any() else 0.0
    found = multilabel_metrics(scores, targets)
    metrics = {f"multi-label/{k}": found[k] for k in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")}
    metrics["loss"] = float(loss)
    per_class = {k: found[k] for k in ("ap", "precision", "recall", "f1", "support")}
    return EvalOutput(metrics, per_class, [], scores if keep_scores else None, targets if keep_scores else None,
                      extra={"multi_label": True})


# --------------------------------------------------------------------------- metrics of a predictions file

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
    unknown = [m for m in metrics or () if m.lower() not in METRICS]
    if unknown:
        raise ClsctlError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    from clsctl.engine.predictions import read_prediction_tensors

    saved = read_prediction_tensors(path)
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
