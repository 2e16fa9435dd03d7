"""Optimizers (with per-parameter options) and composed lr / momentum schedules built from recipe sections."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from clsctl.errors import RecipeError
from clsctl.models._init import BATCH_NORMS
from clsctl.models._meta import NUMBERED_BLOCKS
from clsctl.recipe import schema as S

_NORM_TYPES = (*BATCH_NORMS, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm,
               nn.LocalResponseNorm)
# Names of embeddings (position, class token, patch projection): flat parameters for ``flat_decay_mult``.
_EMBED_NAMES = ("cls_token", "class_token", "pos_embed", "pos_embedding", "patch_embed", "conv_proj", "dist_token",
                "mask_token", "register_tokens")


# --------------------------------------------------------------------------- optimizers


def _norm_param_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower():
            for param_name, _ in module.named_parameters(recurse=False):
                names.add(f"{module_name}.{param_name}" if module_name else param_name)
    return names


def layer_ids(model: nn.Module, names: Sequence[str]) -> tuple[dict[str, int], int]:
    """Layer index of each parameter for layer-wise lr decay, and the number of blocks, from the layer groups
    in the model's spec (:class:`clsctl.models.LayerGroups`; a model without a spec is matched like timm's
    models, by numbered ``blocks.N`` / ``layers.N`` / ``encoder_layer_N``).

    Embeddings are layer 0, block ``i`` is layer ``i + 1``, everything after the blocks (final norm, head)
    is layer ``blocks + 1``.

    Raises:
        RecipeError: The model records no layer groups, or none of ``names`` is in a block.
    """
    meta = getattr(model, "model_meta", None)
    groups = NUMBERED_BLOCKS if meta is None else meta.layout.layer_groups
    found = None if groups is None else groups.layer_ids(names)
    if found is None:
        name = getattr(meta, "name", type(model).__name__)
        raise RecipeError(f"optim.paramwise.layer_decay is for ViT-style models; {name} has no numbered "
                          "transformer blocks (no layer groups in its model spec)")
    return found


def key_matches(key: str, name: str) -> bool:
    """Whether a ``custom_keys`` key selects parameter ``name``: a glob pattern (``*``, ``?``, ``[``) must match
    the whole name, any other key is a name prefix."""
    if any(c in key for c in "*?["):
        return fnmatch.fnmatchcase(name, key)
    return name.startswith(key)


def param_groups(model: nn.Module, config: S.OptimizerBase) -> list[dict[str, Any]]:
    """Parameter groups with per-parameter lr and weight decay, merged where the options are equal.

    Decay multipliers: a matching ``custom_keys`` key (prefix or glob pattern; the longest wins) overrides the
    norm/bias/flat rules; lr multipliers of a key and of layer decay multiply.
    """
    rules = config.paramwise
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    norm_names = _norm_param_names(model) if rules.norm_decay_mult is not None else set()
    layers, count = layer_ids(model, [n for n, _ in named]) if rules.layer_decay is not None else ({}, 0)
    prefixes = sorted(sorted(rules.custom_keys), key=len, reverse=True)  # longest first; ties alphabetical (MMEngine)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in named:
        lr_mult, decay_mult = 1.0, 1.0
        if name in norm_names:
            decay_mult = rules.norm_decay_mult
        elif name.endswith(".bias") and rules.bias_decay_mult is not None:
            decay_mult = rules.bias_decay_mult
        elif param.ndim <= 1 or any(part in _EMBED_NAMES for part in name.split(".")):
            if rules.flat_decay_mult is not None:
                decay_mult = rules.flat_decay_mult
        prefix = next((p for p in prefixes if key_matches(p, name)), None)
        if prefix is not None:
            lr_mult, decay_mult = rules.custom_keys[prefix].lr_mult, rules.custom_keys[prefix].decay_mult
        if rules.layer_decay is not None:
            lr_mult *= rules.layer_decay ** (count + 1 - layers[name])
        key = (lr_mult, decay_mult)
        group = groups.setdefault(key, {"params": [], "names": [], "lr": config.lr * lr_mult,
                                        "weight_decay": config.weight_decay * decay_mult,
                                        "lr_mult": lr_mult, "decay_mult": decay_mult})
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


def auto_lr_scale(recipe: Any, global_batch: int) -> float:
    """The factor ``runtime.auto_scale_lr`` puts on every lr: global batch / ``optim.base_batch_size`` (1 when
    off). The recipe validator makes sure ``base_batch_size`` is set when the option is on."""
    if not recipe.runtime.auto_scale_lr:
        return 1.0
    return global_batch / recipe.optim.base_batch_size


def build_optimizer(model: nn.Module, config: S.Optimizer, *, lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """The optimizer a recipe's ``optim`` section describes, over the trainable parameters.

    Args:
        model: The (unwrapped) model.
        config: Recipe ``optim`` section.
        lr_scale: Factor on every lr (``--auto-scale-lr``).
    """
    if lr_scale != 1.0:
        config = config.model_copy(update={"lr": config.lr * lr_scale})
    groups = param_groups(model, config)
    for group in groups:
        del group["names"]  # torch keeps unknown keys, but the names would bloat optimizer state dicts
    if isinstance(config, S.SGD):
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov and config.momentum > 0)
    if isinstance(config, S.Adam):
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas, eps=config.eps,
                                weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    if isinstance(config, S.AdamW):
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps,
                                 weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    if isinstance(config, S.RMSprop):
        return torch.optim.RMSprop(groups, lr=config.lr, alpha=config.alpha, eps=config.eps, momentum=config.momentum,
                                   centered=config.centered, weight_decay=config.weight_decay)
    if isinstance(config, S.TorchOptimizer):
        cls = getattr(torch.optim, config.name, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            from clsctl.registry import unknown_name_message

            known = [n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                     and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != "Optimizer"]
            raise RecipeError(f"optim.name: {unknown_name_message('torch.optim optimizer', config.name, known)}")
        try:
            return cls(groups, lr=config.lr, weight_decay=config.weight_decay, **config.kwargs)
        except TypeError as exc:
            raise RecipeError(f"optim.kwargs: torch.optim.{config.name}: {exc}") from exc
    raise TypeError(f"no builder for optimizer {type(config).__name__}")  # a schema entry without a builder is a bug


# --------------------------------------------------------------------------- schedules


def _as_list(config: S.Schedule | Sequence[S.Schedule]) -> list[S.Schedule]:
    return list(config) if isinstance(config, (list, tuple)) else [config]


def _window(entry: S.Schedule, steps_per_epoch: int, total_steps: int) -> tuple[int, int, int]:
    """Begin, end and warm-up length of an entry, in iterations."""
    unit = steps_per_epoch if entry.by_epoch else 1
    begin = round(entry.begin * unit)
    end = total_steps if entry.end is None else min(round(entry.end * unit), total_steps)
    warmup = entry.warmup_iters or round(entry.warmup_epochs * steps_per_epoch)
    return begin, max(end, begin + 1), warmup


def _curve(entry: S.Schedule, t: float, span: float, step: int, steps_per_epoch: int, base: float) -> float:
    """Factor of the entry's main curve at ``t`` iterations into a ``span``-iteration window."""
    progress = min(max(t / max(span, 1), 0.0), 1.0)
    unit = steps_per_epoch if entry.by_epoch else 1
    if isinstance(entry, S.CosineSchedule):
        floor = entry.min_ratio if entry.min_ratio is not None else entry.min_lr / base
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if isinstance(entry, S.MultiStepSchedule):  # milestones count from the start of the run
        return entry.gamma ** sum(step // unit >= m for m in entry.milestones)
    if isinstance(entry, S.StepSchedule):
        return entry.gamma ** (int(t) // (entry.step_size * unit))
    if isinstance(entry, S.LinearSchedule):
        return entry.start_factor + (entry.end_factor - entry.start_factor) * progress
    if isinstance(entry, S.PolynomialSchedule):
        floor = entry.min_lr / base
        return floor + (1.0 - floor) * (1.0 - progress) ** entry.power
    if isinstance(entry, S.ExponentialSchedule):
        return entry.gamma ** (min(t, span) / unit)
    if isinstance(entry, S.OneCycleSchedule):
        start, end = 1.0 / entry.div_factor, 1.0 / (entry.div_factor * entry.final_div_factor)
        return _one_cycle(t, int(span), entry, start, 1.0, end)
    if isinstance(entry, S.ConstantSchedule):
        return entry.factor
    raise TypeError(f"no curve for schedule {type(entry).__name__}")


def _one_cycle(t: float, span: int, entry: S.OneCycleSchedule, start: float, peak: float, end: float) -> float:
    """Value at iteration ``t`` of a ``span``-iteration cycle: ``start`` to ``peak``, then to ``end`` on the
    last iteration (the phase boundaries of torch's ``OneCycleLR``)."""
    rise_end = entry.pct_start * span - 1
    last = span - 1
    if t <= rise_end:
        a, b, x = start, peak, t / max(rise_end, 1e-12)
    else:
        a, b, x = peak, end, min((t - rise_end) / max(last - rise_end, 1e-12), 1.0)
    if entry.anneal == "cos":
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * x))
    return a + (b - a) * x


def entry_factor(entry: S.Schedule, step: int, steps_per_epoch: int, total_steps: int, base: float = 1.0) -> float:
    """Factor one schedule entry applies at iteration ``step``.

    1 before ``begin``; then the linear warm-up, if any; then the entry's curve over the rest of the window;
    after ``end`` the value the curve ended at (``constant``: 1 again).
    """
    if entry.update == "epoch":  # the value holds for a whole epoch: take it at the epoch's first iteration
        step = step // steps_per_epoch * steps_per_epoch
    begin, end, warmup = _window(entry, steps_per_epoch, total_steps)
    if step < begin:
        return 1.0
    if step >= end and isinstance(entry, S.ConstantSchedule):
        return 1.0  # a constant factor holds inside its window only (like torch's and MMEngine's ConstantLR)
    t = step - begin
    if t < warmup:
        start = entry.warmup_start_factor
        warm = start + (1.0 - start) * t / warmup
        # Milestones count from the start of the run, so one inside the warm-up still applies.
        if isinstance(entry, S.MultiStepSchedule):
            return warm * _curve(entry, 0, 1, step, steps_per_epoch, base)
        return warm
    span = end - begin - warmup
    return _curve(entry, min(t - warmup, span), span, min(step, end - 1), steps_per_epoch, base)


def _momentum_key(group: dict[str, Any]) -> str | None:
    if "betas" in group:
        return "betas"
    return "momentum" if "momentum" in group else None


class LrSchedule:
    """Sets every parameter group's lr (and momentum, weight decay) from its initial value at each iteration.

    The whole state is the iteration counter, so resuming restores the lr exactly.

    Args:
        optimizer: Optimizer whose groups are scheduled.
        config: Recipe ``schedule`` section: one entry or a list.
        steps_per_epoch: Optimizer steps per epoch.
        epochs: Epochs in the run.

    Raises:
        RecipeError: A momentum schedule on an optimizer without momentum.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: S.Schedule | Sequence[S.Schedule],
                 steps_per_epoch: int, epochs: int) -> None:
        self.optimizer = optimizer
        self.entries = _as_list(config)
        self.config = config
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.total_steps = self.steps_per_epoch * epochs
        self.step_count = 0
        self._lr_entries = [e for e in self.entries if e.param == "lr"]
        self._momentum_entries = [e for e in self.entries if e.param == "momentum"]
        self._decay_entries = [e for e in self.entries if e.param == "weight_decay"]
        self._cycle = [e for e in self._lr_entries if isinstance(e, S.OneCycleSchedule) and e.cycle_momentum]
        self._momentum_key = _momentum_key(optimizer.param_groups[0])
        if (self._momentum_entries or self._cycle) and self._momentum_key is None:
            raise RecipeError(f"schedule: a momentum schedule needs an optimizer with momentum or betas, "
                              f"{type(optimizer).__name__} has neither")
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            if self._decay_entries:
                group.setdefault("initial_weight_decay", group.get("weight_decay", 0.0))
            if self._momentum_key is not None:
                value = group[self._momentum_key]
                group.setdefault("initial_momentum", value[0] if self._momentum_key == "betas" else value)
        self._apply()

    def _apply(self) -> None:
        step, spe, total = self.step_count, self.steps_per_epoch, self.total_steps
        for group in self.optimizer.param_groups:
            base = group["initial_lr"]
            factor = 1.0
            for entry in self._lr_entries:
                factor *= entry_factor(entry, step, spe, total, base)
            group["lr"] = base * factor
        if self._momentum_entries or self._cycle:
            for group in self.optimizer.param_groups:
                self._set_momentum(group, self._momentum_value(group))
        for group in self.optimizer.param_groups if self._decay_entries else ():
            base = group["initial_weight_decay"]
            if base == 0:
                continue  # a group without decay (norm, bias, ...) keeps none
            factor = 1.0
            for entry in self._decay_entries:
                factor *= entry_factor(entry, step, spe, total, base)
            group["weight_decay"] = base * factor

    def _momentum_value(self, group: dict[str, Any]) -> float:
        base = group["initial_momentum"]
        value = base
        for entry in self._cycle:  # absolute values, the opposite of the lr cycle
            begin, end, _ = _window(entry, self.steps_per_epoch, self.total_steps)
            t = min(max(self.step_count - begin, 0), end - begin)
            value = _one_cycle(t, end - begin, entry, entry.max_momentum, entry.base_momentum, entry.max_momentum)
        for entry in self._momentum_entries:
            value *= entry_factor(entry, self.step_count, self.steps_per_epoch, self.total_steps, base)
        return value

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self._momentum_key == "betas":
            group["betas"] = (value, group["betas"][1])
        else:
            group["momentum"] = value

    def step(self) -> None:
        """Advance one iteration and set the lr it uses."""
        self.step_count += 1
        self._apply()

    def current_lr(self) -> float:
        """Lr of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def current_momentum(self) -> float | None:
        """Momentum (or Adam's beta1) of the first parameter group; ``None`` for optimizers without one."""
        if self._momentum_key is None:
            return None
        value = self.optimizer.param_groups[0][self._momentum_key]
        return float(value[0] if self._momentum_key == "betas" else value)

    def state_dict(self) -> dict[str, int]:
        """The iteration counter."""
        return {"step": self.step_count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the iteration counter and the lr it implies."""
        self.step_count = int(state["step"])
        self._apply()
