"""Model EMA: an exponential moving average of the weights, often better than the weights themselves."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    """Keeps ``ema = decay * ema + (1 - decay) * weights`` after optimizer steps.

    Floating-point parameters and buffers are averaged; integer buffers (BatchNorm's batch counter) are
    copied. The average lives on the model's device and is never trained.

    Args:
        model: The (unwrapped) model; its current weights start the average.
        decay: Weight of the old average.
        warmup: Use ``min(decay, (1 + n) / (10 + n))`` at update ``n``, so the random init fades quickly (off by
            default, as in timm's ``ModelEmaV3`` and MMPretrain's ``EMAHook``).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, *, warmup: bool = False) -> None:
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        # state_dict() tensors share storage with the modules, so these pairs stay valid for the whole run.
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        self._float = [(e, m) for e, m in pairs if e.is_floating_point()]
        self._other = [(e, m) for e, m in pairs if not e.is_floating_point()]

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's current weights."""
        decay = self.current_decay()
        if self._float:
            # One fused kernel per dtype group instead of a Python loop over every tensor. torch 2.14 has no public
            # name for it (the public torch.foreach namespace comes later); switch to torch.foreach.lerp_ then.
            torch._foreach_lerp_([e for e, _ in self._float], [m for _, m in self._float], 1.0 - decay)
        for ema_value, value in self._other:
            ema_value.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the update count (for resuming)."""
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
