"""Classification metrics on tensors: top-k accuracy, confusion matrix, precision/recall/F1."""

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


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``matrix[true, predicted]`` counts."""
    index = targets.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def precision_recall_f1(matrix: torch.Tensor) -> dict[str, Any]:
    """Per-class and macro precision/recall/F1 (in %) from a confusion matrix; classes never predicted or
    never present count as 0, as scikit-learn's ``zero_division=0``."""
    matrix = matrix.double()
    tp = matrix.diag()
    predicted = matrix.sum(0)
    actual = matrix.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return {
        "precision": (precision * 100).tolist(),
        "recall": (recall * 100).tolist(),
        "f1": (f1 * 100).tolist(),
        "support": actual.long().tolist(),
        "macro_precision": float(precision.mean() * 100),
        "macro_recall": float(recall.mean() * 100),
        "macro_f1": float(f1.mean() * 100),
    }
