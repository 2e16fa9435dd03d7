"""Losses a recipe can choose: cross-entropy, focal, and the multi-label BCE and asymmetric losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clsctl.errors import RecipeError
from clsctl.recipe import schema as S


class FocalLoss(nn.Module):
    """Softmax focal loss, mean over the batch.

    Args:
        gamma: Focusing exponent; 0 gives (weighted) cross-entropy.
        class_weights: Optional alpha per class.
    """

    def __init__(self, gamma: float = 2.0, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
        loss = -((1.0 - log_p.exp()) ** self.gamma) * log_p
        if self.class_weights is not None:
            loss = loss * self.class_weights[targets]
        return loss.mean()


class MultiLabelBCE(nn.Module):
    """Sigmoid binary cross-entropy on multi-hot targets, with optional label smoothing towards 0.5."""

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        valid = (targets >= 0).float()  # -1 marks labels to ignore (VOC's "difficult")
        smoothed = targets.float().clamp(min=0) * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        loss = F.binary_cross_entropy_with_logits(logits.float(), smoothed, pos_weight=self.pos_weight,
                                                  reduction="none")
        return (loss * valid).sum() / valid.sum().clamp(min=1)


class AsymmetricLoss(nn.Module):
    """Asymmetric loss (ASL) for multi-label classification.

    Negatives' probabilities are shifted down by ``clip`` (easy negatives drop out entirely) and focused with
    ``gamma_neg``; positives with ``gamma_pos``. Summed over classes, averaged over the batch.
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05, eps: float = 1e-8) -> None:
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        valid = (targets >= 0).float()  # -1 marks labels to ignore
        targets = targets.float().clamp(min=0)
        p = torch.sigmoid(logits.float())
        p_neg = (p - self.clip).clamp(min=0) if self.clip > 0 else p
        loss_pos = targets * (1 - p) ** self.gamma_pos * torch.log(p.clamp(min=self.eps))
        loss_neg = (1 - targets) * p_neg**self.gamma_neg * torch.log((1 - p_neg).clamp(min=self.eps))
        return -((loss_pos + loss_neg) * valid).sum(dim=1).mean()


def _per_class(values: list[float] | None, num_classes: int, key: str) -> torch.Tensor | None:
    if values is None:
        return None
    if len(values) != num_classes:
        raise RecipeError(f"loss.{key}: has {len(values)} values but there are {num_classes} classes")
    return torch.tensor(values, dtype=torch.float32)


def build_loss(config: S.Loss, num_classes: int) -> nn.Module:
    """The loss module of the recipe's ``loss`` section."""
    if isinstance(config, S.CrossEntropyLoss):
        weights = _per_class(config.class_weights, num_classes, "class_weights")
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    if isinstance(config, S.FocalLoss):
        return FocalLoss(config.gamma, _per_class(config.class_weights, num_classes, "class_weights"))
    if isinstance(config, S.BinaryCrossEntropyLoss):
        return MultiLabelBCE(_per_class(config.pos_weight, num_classes, "pos_weight"), config.label_smoothing)
    if isinstance(config, S.AsymmetricLoss):
        return AsymmetricLoss(config.gamma_pos, config.gamma_neg, config.clip, config.eps)
    raise TypeError(f"no builder for loss {type(config).__name__}")


def is_multi_label(config: S.Loss) -> bool:
    """Whether the loss expects multi-hot targets."""
    return isinstance(config, (S.BinaryCrossEntropyLoss, S.AsymmetricLoss))
