"""The evaluation loop: a model over a loader (``forward_pass``), then classification metrics of its logits
(``evaluate_logits``); training's validation and ``clsctl test`` (:mod:`clsctl.engine.evaluate`) both run it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from clsctl.engine.metrics import confusion_matrix, multilabel_metrics, precision_recall_f1, topk_correct


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
    logits, targets = forward_pass(model, loader, device, autocast_dtype=torch.float16 if amp else None,
                                   channels_last=channels_last, advance=progress)
    logits = torch.cat(logits) if logits else torch.empty(0, num_classes)
    targets = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    return evaluate_logits(logits, targets, num_classes, keep_scores=keep_scores)


@torch.no_grad()
def forward_pass(model: nn.Module, loader: Any, device: torch.device, *, inputs: Any = None,
                 autocast_dtype: torch.dtype | None = None, channels_last: bool = False, to_host: bool = True,
                 advance: Callable[[int], Any] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The float32 logits and the targets of each batch of ``loader``, in loader order (``model`` in eval mode).

    Args:
        inputs: Turns a loader batch into the model's input on ``device``
            (:class:`~clsctl.data.device.DeviceInput`); without it the images are copied as they are.
        autocast_dtype: Autocast dtype; ``None`` runs in full precision.
        channels_last: channels_last inputs.
        to_host: Copy each batch's logits and targets to the host as it comes. Without it they stay where
            they are, for the caller to copy once (each copy from a GPU waits for its queue to drain).
        advance: Called with each batch's number of samples.
    """
    model.eval()
    logits_all, targets_all = [], []
    for images, targets in loader:
        if inputs is not None:
            images, targets = inputs(images, targets, device, dtype=autocast_dtype, channels_last=channels_last)
        else:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(images)
        logits = logits.float()
        logits_all.append(logits.cpu() if to_host else logits)
        targets_all.append(targets.cpu() if to_host else targets)
        if advance is not None:
            advance(len(targets))
    return logits_all, targets_all


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
