"""Necks (pooling) and heads (classifiers) a recipe can put on any registered model.

A family names, in its metadata, the module that pools (``extra["pool"]``) and the final linear layer
(``extra["classifier"]``). A neck replaces the pooling module and a head replaces the classifier, in place, so
every other parameter keeps its (torchvision-compatible) name.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clsctl.errors import RecipeError
from clsctl.recipe import schema as S

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class GeM(nn.Module):
    """Generalized-mean pooling to ``(N, C, 1, 1)`` (Radenović et al., 2018).

    Args:
        p: Initial exponent.
        learnable: Train ``p``.
        eps: Floor of the activations before the power, so gradients stay finite.
    """

    def __init__(self, p: float = 3.0, learnable: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1)
        return pooled.pow(1.0 / self.p)


def build_neck(config: S.Neck) -> nn.Module:
    """The pooling module of a ``model.neck`` entry (output ``(N, C, 1, 1)``)."""
    if isinstance(config, S.GeneralizedMeanPooling):
        return GeM(config.p, config.learnable, config.eps)
    return nn.AdaptiveAvgPool2d(1)


def build_head(config: S.Head, in_features: int, num_classes: int) -> nn.Module:
    """The classifier of a ``model.head`` entry, mapping ``in_features`` to ``num_classes`` scores."""
    if isinstance(config, (S.LinearHead, S.MultiLabelLinearHead)):
        linear = nn.Linear(in_features, num_classes)
        return nn.Sequential(nn.Dropout(config.dropout), linear) if config.dropout > 0 else linear
    if isinstance(config, S.PreLogitsHead):
        return nn.Sequential(nn.Linear(in_features, config.hidden), nn.Tanh(), nn.Linear(config.hidden, num_classes))
    if isinstance(config, S.StackedHead):
        layers: list[nn.Module] = []
        width = in_features
        for hidden in config.hidden:
            layers.append(nn.Linear(width, hidden, bias=config.norm == "none"))
            if config.norm == "batch":
                layers.append(nn.BatchNorm1d(hidden))
            elif config.norm == "layer":
                layers.append(nn.LayerNorm(hidden))
            layers.append(_ACTIVATIONS[config.activation]())
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)
    raise TypeError(f"no builder for head {type(config).__name__}")


def _replace(model: nn.Module, path: str, module: nn.Module) -> nn.Module:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, name) if not name.isdigit() else parent[int(name)]
    if name.isdigit():
        parent[int(name)] = module
    else:
        setattr(parent, name, module)
    return old


def _last_linear(module: nn.Module) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"{type(module).__name__} has no linear layer")
    return linears[0]


def apply_neck_and_head(model: nn.Module, neck: S.Neck | None, head: S.Head | None, num_classes: int) -> nn.Module:
    """Swap the model's pooling and/or classifier for the recipe's, in place.

    Raises:
        RecipeError: The family does not say where its pooling is (for a neck).
    """
    meta = model.model_meta
    if neck is not None:
        pool_path = meta.extra.get("pool")
        if pool_path is None:
            raise RecipeError(f"model.neck: {meta.name} has no replaceable pooling layer; use its own pooling")
        _replace(model, pool_path, build_neck(neck))
    if head is not None:
        classifier_path = meta.extra.get("classifier", "fc")
        current = model.get_submodule(classifier_path)
        in_features = _last_linear(current).in_features
        _replace(model, classifier_path, build_head(head, in_features, num_classes))
    return model
