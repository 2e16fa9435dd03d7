"""``clsctl.hub``: load models by name, in the spirit of ``torch.hub`` and ``megengine.hub``.

Example:
    >>> import clsctl
    >>> model = clsctl.hub.load("resnet50", pretrained=True)  # doctest: +SKIP
    >>> clsctl.hub.list("repvgg*")  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


def load(name: str, pretrained: bool = False, *, num_classes: int | None = None, weights: str | Path | None = None,
         **kwargs: Any) -> nn.Module:
    """Build a registered model (or ``timm/<name>``), optionally with its published weights.

    Args:
        name: Registered name (``-``/``_`` and case do not matter) or ``timm/<name>``.
        pretrained: Fetch the published ImageNet weights through torch.hub's cache (timm's for ``timm/``).
        num_classes: Classifier size; a head of another size than the weights' is re-initialised.
        weights: Local weights file (torchvision/timm state dict or clsctl checkpoint).
        **kwargs: Family options, e.g. ``frozen_stages`` or ``drop_rate``.

    Returns:
        The model, with its metadata as ``model.model_meta``.
    """
    from clsctl.models import create_model

    return create_model(name, pretrained=pretrained, num_classes=num_classes, weights=weights, **kwargs)


def list(pattern: str | None = None, *, pretrained: bool = False,  # noqa: A001  mirrors torch.hub.list
         reparameterizable: bool = False) -> builtins.list[str]:
    """Registered model names matching a wildcard (``resnet*``); see :func:`clsctl.list_models`."""
    from clsctl.models import list_models

    return list_models(pattern, pretrained=pretrained, reparameterizable=reparameterizable)


def help(name: str) -> str:  # noqa: A001  mirrors torch.hub.help
    """The docstring of a registered variant (unknown names raise with suggestions)."""
    from clsctl.models import MODELS

    return inspect.getdoc(MODELS.get(name).build) or ""
