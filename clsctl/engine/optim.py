"""Optimizers and learning-rate schedules built from recipe sections."""

from __future__ import annotations

import math

import torch
from torch import nn

from clsctl.recipe import schema as S


def build_optimizer(model: nn.Module, config: S.Optimizer) -> torch.optim.Optimizer:
    """The optimizer a recipe's ``optim`` section describes, over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(config, S.SGD):
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov and config.momentum > 0)
    if isinstance(config, S.AdamW):
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, eps=config.eps,
                                 weight_decay=config.weight_decay)
    raise TypeError(f"no builder for optimizer {type(config).__name__}")


def lr_factor(config: S.Schedule, step: int, steps_per_epoch: int, total_steps: int, base_lr: float = 1.0) -> float:
    """Multiplier of the base lr at iteration ``step`` (0-based) of a run of ``total_steps``.

    Linear warm-up from ``warmup_start_factor`` over ``warmup_epochs`` comes first; the main schedule then
    runs over the remaining iterations (cosine) or by epoch (multi-step).
    """
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        start = config.warmup_start_factor
        return start + (1.0 - start) * step / warmup_steps
    if isinstance(config, S.CosineSchedule):
        span = max(total_steps - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        floor = config.min_lr / base_lr
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if isinstance(config, S.MultiStepSchedule):
        epoch = step // steps_per_epoch
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    return 1.0


class LrSchedule:
    """Sets every parameter group's lr from its ``initial_lr`` at each iteration.

    The whole state is the iteration counter, so resuming restores the lr exactly.

    Args:
        optimizer: Optimizer whose groups are scheduled.
        config: Recipe ``schedule`` section.
        steps_per_epoch: Optimizer steps per epoch.
        epochs: Epochs in the run.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: S.Schedule, steps_per_epoch: int, epochs: int) -> None:
        self.optimizer = optimizer
        self.config = config
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.total_steps = self.steps_per_epoch * epochs
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            base = group["initial_lr"]
            group["lr"] = base * lr_factor(self.config, self.step_count, self.steps_per_epoch, self.total_steps, base)

    def step(self) -> None:
        """Advance one iteration and set the lr it uses."""
        self.step_count += 1
        self._apply()

    def current_lr(self) -> float:
        """Lr of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, int]:
        """The iteration counter."""
        return {"step": self.step_count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the iteration counter and the lr it implies."""
        self.step_count = int(state["step"])
        self._apply()
