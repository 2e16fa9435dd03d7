"""``frozen_stages`` for every family: freeze the stem and the first ``k`` stages of a model.

Each registered variant lists its stages in ``ModelMeta.layout.stages``: a list of lists of paths, the stem
first, then one entry per stage in forward order, e.g. ResNet's
``[["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]``. A path names a submodule
(``features.3``) or a parameter that lives outside any stage module (ViT's ``class_token``).

Semantics are MMPretrain's: ``-1`` freezes nothing, ``0`` the stem, ``k`` the stem and stages 1 to ``k``.
Frozen parameters get ``requires_grad = False`` and frozen modules stay in eval mode, so their BatchNorm
running statistics (and dropout / stochastic depth) do not change while the rest of the model trains.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from torch import nn

from clsctl.errors import ClsctlError

FROZEN_ATTR = "frozen_stages"
_PATHS_ATTR = "_clsctl_frozen_paths"


class FrozenStagesError(ClsctlError, ValueError):
    """``frozen_stages`` outside ``-1 .. number of stages`` (a ValueError too, for code that catches those)."""


def stage_paths(model: nn.Module) -> list[list[str]]:
    """The stages recorded in ``model.model_meta.layout.stages`` (stem first).

    Raises:
        FrozenStagesError: The model has no recorded stages (e.g. a timm model).
    """
    meta = getattr(model, "model_meta", None)
    stages = None if meta is None else meta.layout.stages
    if not stages:
        name = getattr(meta, "name", type(model).__name__)
        raise FrozenStagesError(f"{name} does not record its stages, so frozen_stages cannot be applied")
    return [list(paths) for paths in stages]


def frozen_paths(stages: Sequence[Sequence[str]], frozen_stages: int) -> list[str]:
    """Paths frozen by ``frozen_stages``: the stem's and those of the first ``frozen_stages`` stages.

    Raises:
        FrozenStagesError: ``frozen_stages`` outside ``-1 .. len(stages) - 1``.
    """
    last = len(stages) - 1
    if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= last:
        raise FrozenStagesError(
            f"frozen_stages must be in [-1, {last}] (-1: none, 0: stem, k: stem and the first k of {last} stages), "
            f"got {frozen_stages!r}"
        )
    return [path for paths in stages[: frozen_stages + 1] for path in paths]


def _resolve(model: nn.Module, path: str) -> nn.Module | nn.Parameter:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return model.get_parameter(path)  # raises AttributeError naming the path when it is neither


def _keep_eval(module: nn.Module, args: Any) -> None:
    """Forward pre-hook of a frozen module: put it back in eval mode if something switched it to training."""
    if module.training:
        module.train(False)


def _set_frozen_modes(model: nn.Module) -> None:
    for path in getattr(model, _PATHS_ATTR, ()):
        target = _resolve(model, path)
        if isinstance(target, nn.Module):
            target.train(False)


def _train_keeping_frozen(model: nn.Module, mode: bool = True) -> nn.Module:
    """``model.train`` for a model with frozen stages: switch modes, then put the frozen modules back in eval."""
    type(model).train(model, mode)
    if mode:
        _set_frozen_modes(model)
    return model


def freeze_stages(model: nn.Module, frozen_stages: int, stages: Sequence[Sequence[str]] | None = None) -> nn.Module:
    """Freeze the stem and the first ``frozen_stages`` stages of ``model`` in place.

    Two mechanisms keep frozen modules in eval mode, because either alone has a gap:

    * ``model.train`` is replaced on the instance (a ``functools.partial``, so the model still pickles and
      deep-copies, and the copy's ``train`` is bound to the copy) by one that puts the frozen modules back in
      eval mode after every ``model.train()``. This keeps ``module.training`` truthful for code that inspects
      it, and applies when a wrapper module's ``train()`` recurses into the model.
    * A forward pre-hook on every frozen module that holds running statistics (BatchNorm and friends) switches
      it back to eval right before it runs. This covers code that bypasses ``model.train``, such as
      ``model.apply(lambda m: m.train())`` or training a submodule directly, so the statistics can never be
      updated. The hook is a module-level function, so it survives pickling and ``copy.deepcopy`` too.

    Args:
        model: A model built by :func:`clsctl.models.create_model` (its ``model_meta`` records the stages).
        frozen_stages: ``-1`` (nothing), ``0`` (stem) or ``k`` (stem and stages 1 to ``k``).
        stages: Stage paths to use instead of ``model.model_meta.layout.stages``.

    Returns:
        The model.

    Raises:
        FrozenStagesError: ``frozen_stages`` out of range, or no stages recorded.
    """
    stages = stage_paths(model) if stages is None else stages
    paths = frozen_paths(stages, frozen_stages)
    setattr(model, FROZEN_ATTR, frozen_stages)
    if frozen_stages < 0:
        return model
    previous = list(getattr(model, _PATHS_ATTR, ()))
    model.__dict__[_PATHS_ATTR] = previous + [p for p in paths if p not in previous]
    for path in paths:
        target = _resolve(model, path)
        params = [target] if isinstance(target, nn.Parameter) else list(target.parameters())
        for param in params:
            param.requires_grad = False
        if isinstance(target, nn.Module):
            for module in target.modules():
                has_stats = getattr(module, "running_mean", None) is not None
                if has_stats and not getattr(module, "_clsctl_keep_eval", False):  # one hook per module
                    module.register_forward_pre_hook(_keep_eval)
                    module._clsctl_keep_eval = True
    if "train" not in model.__dict__:
        model.__dict__["train"] = functools.partial(_train_keeping_frozen, model)
    _set_frozen_modes(model)
    return model
