"""Test-time augmentation: average a model's class probabilities over several views of each image."""

from __future__ import annotations

import torch
from torch import nn


class AverageViews(nn.Module):
    """Runs ``model`` on every view of each image and averages the probabilities, as MMPretrain's
    ``AverageClsScoreTTA`` averages ``pred_score``.

    Input ``(B, V, C, H, W)`` (the views of :class:`~clsctl.data.transforms.MultiViewTransform`); the ``B * V``
    views go through ``model`` as one batch. The output stands where logits stand, so metrics and scores need no
    special case: the log of the averaged softmax probabilities (softmax of which gives those averages back), or
    for multi-label models the logit of the averaged sigmoid probabilities.

    Args:
        model: The classifier.
        multi_label: Classes are scored independently (sigmoid) instead of by one softmax.
    """

    def __init__(self, model: nn.Module, multi_label: bool = False) -> None:
        super().__init__()
        self.model = model
        self.multi_label = multi_label

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        batch, count = views.shape[:2]
        logits = self.model(views.flatten(0, 1)).float()
        if self.multi_label:
            probs = logits.sigmoid().view(batch, count, -1).mean(1)
            return torch.logit(probs, eps=1e-7)
        probs = logits.softmax(-1).view(batch, count, -1).mean(1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
