"""Classification metrics on tensors.

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
from typing import Any

import torch


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


def multi_hot(labels: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """``(N, C)`` 0/1 targets from each sample's list of label indices."""
    out = torch.zeros(len(labels), num_classes, dtype=torch.long)
    for row, indices in enumerate(labels):
        out[row, list(indices)] = 1
    return out
