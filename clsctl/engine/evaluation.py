"""Running a model over a loader and computing classification metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from clsctl.engine.metrics import confusion_matrix, precision_recall_f1, topk_correct


@dataclass
class EvalOutput:
    """Metrics of one pass over a dataset, and optionally every prediction."""

    metrics: dict[str, float]
    per_class: dict[str, Any]
    confusion: list[list[int]]
    scores: torch.Tensor | None = None  # (N, C) softmax probabilities, when kept
    targets: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def run_evaluation(model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int, *,
                   amp: bool = False, channels_last: bool = False, keep_scores: bool = False,
                   progress: Any = None) -> EvalOutput:
    """Evaluate ``model`` on every batch of ``loader``.

    Args:
        model: The classifier (put in eval mode here).
        loader: Yields ``(images, targets)``.
        device: Where to run.
        num_classes: Size of the label set.
        amp: fp16 autocast (CUDA only).
        channels_last: channels_last inputs (CUDA only).
        keep_scores: Keep every softmax output (for per-sample predictions).
        progress: Optional callable ``advance(n_images)``.
    """
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    correct = {1: 0, 5: 0}
    loss_sum, seen = 0.0, 0
    preds, targets_all, scores = [], [], []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(images)
        logits = logits.float()
        loss_sum += float(criterion(logits, targets))
        for k, hits in topk_correct(logits, targets, (1, 5)).items():
            correct[k] += hits
        seen += len(targets)
        preds.append(logits.argmax(1).cpu())
        targets_all.append(targets.cpu())
        if keep_scores:
            scores.append(logits.softmax(1).cpu())
        if progress is not None:
            progress(len(targets))
    all_preds = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    all_targets = torch.cat(targets_all) if targets_all else torch.empty(0, dtype=torch.long)
    matrix = confusion_matrix(all_preds, all_targets, num_classes)
    metrics = {
        "accuracy/top1": 100.0 * correct[1] / max(seen, 1),
        "accuracy/top5": 100.0 * correct[5] / max(seen, 1),
        "loss": loss_sum / max(seen, 1),
    }
    per_class = precision_recall_f1(matrix)
    metrics.update({f"macro/{k.removeprefix('macro_')}": per_class[k] for k in ("macro_precision", "macro_recall", "macro_f1")})
    return EvalOutput(metrics, per_class, matrix.tolist(), torch.cat(scores) if keep_scores and scores else None,
                      all_targets if keep_scores else None)
