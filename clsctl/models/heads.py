"""Necks (pooling) and heads (classifiers) on any registered model, and timm-like classifier access.

A family names, in its spec, the module that pools (``ModelLayout.pool``) and the final classifier
(``ModelLayout.classifier``). A neck replaces the pooling module and a head replaces the classifier, in place, so
every other parameter keeps its (torchvision-compatible) name. :func:`get_classifier` and
:func:`reset_classifier` are the counterparts of timm's methods of those names, for every family.

The neck and head kinds are defined here, once, as pydantic models (:data:`Neck`, :data:`Head`); the recipe
schema (``clsctl.recipe.schema``, a layer above) reuses them for ``model.neck`` and ``model.head``, and
:func:`parse_neck` / :func:`parse_head` read the same sections from plain data (the recipe a checkpoint or Hub
``config.json`` stores), so there is one definition of each kind, its options and their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

import torch
from torch import nn
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from clsctl.errors import RecipeError
from clsctl.models._meta import ModelLayout

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class _Spec(BaseModel):
    """Base of the neck and head specs: unknown keys are errors (the recipe schema's rule)."""

    model_config = ConfigDict(extra="forbid", frozen=False, protected_namespaces=())


class GlobalAveragePooling(_Spec):
    """Average over the spatial positions (what most models do already)."""

    type: Literal["gap"]


class GeneralizedMeanPooling(_Spec):
    """GeM pooling, (mean x^p)^(1/p): p=1 is average pooling, large p approaches max pooling."""

    type: Literal["gem"]
    p: Annotated[float, Field(gt=0)] = 3.0
    learnable: bool = Field(True, description="Learn p with the network.")
    eps: Annotated[float, Field(gt=0)] = 1e-6


Neck = Annotated[Union[GlobalAveragePooling, GeneralizedMeanPooling], Field(discriminator="type")]
"""A global pooling to ``(N, C, 1, 1)``: what a recipe's ``model.neck`` holds."""


class LinearHead(_Spec):
    """One linear layer (optionally after dropout)."""

    type: Literal["linear"]
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


class StackedHead(_Spec):
    """Hidden layers (linear, optional norm, activation, dropout), then the linear classifier."""

    type: Literal["stacked"]
    hidden: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    norm: Literal["none", "batch", "layer"] = "none"


class PreLogitsHead(_Spec):
    """ViT-style pre-logits: linear to ``hidden``, tanh, then the classifier."""

    type: Literal["vit_pre_logits"]
    hidden: Annotated[int, Field(gt=0)] = 768


class MultiLabelLinearHead(_Spec):
    """Linear classifier whose outputs are independent per-class scores (sigmoid), for multi-label data."""

    type: Literal["multi_label_linear"]
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    threshold: Annotated[float, Field(ge=0, le=1)] = Field(0.5, description="Score above which a class is predicted.")


Head = Annotated[Union[LinearHead, StackedHead, PreLogitsHead, MultiLabelLinearHead], Field(discriminator="type")]
"""A classifier mapping pooled features to class scores: what a recipe's ``model.head`` holds."""


def parse_neck(data: Mapping[str, Any] | None) -> Any:
    """A :data:`Neck` from plain data (a checkpoint's or Hub config's recipe section), None for None.

    Raises:
        RecipeError: Data that is not a neck.
    """
    return None if data is None else _parse(Neck, data, "neck")


def parse_head(data: Mapping[str, Any] | None) -> Any:
    """A :data:`Head` from plain data, None for None (see :func:`parse_neck`)."""
    return None if data is None else _parse(Head, data, "head")


def _parse(kind: Any, data: Mapping[str, Any], key: str) -> Any:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(kind).validate_python(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RecipeError(f"model.{key}: {first['msg']} (got {dict(data)!r:.80})") from None


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


def build_neck(spec: Any) -> nn.Module:
    """The pooling module of a :data:`Neck` (output ``(N, C, 1, 1)``)."""
    if isinstance(spec, GeneralizedMeanPooling):
        return GeM(spec.p, spec.learnable, spec.eps)
    return nn.AdaptiveAvgPool2d(1)


def build_head(spec: Any, in_features: int, num_classes: int) -> nn.Module:
    """The classifier a :data:`Head` describes, mapping ``in_features`` to ``num_classes`` scores."""
    if isinstance(spec, (LinearHead, MultiLabelLinearHead)):
        linear = nn.Linear(in_features, num_classes)
        return nn.Sequential(nn.Dropout(spec.dropout), linear) if spec.dropout > 0 else linear
    if isinstance(spec, PreLogitsHead):
        return nn.Sequential(nn.Linear(in_features, spec.hidden), nn.Tanh(), nn.Linear(spec.hidden, num_classes))
    if isinstance(spec, StackedHead):
        layers: list[nn.Module] = []
        width = in_features
        for hidden in spec.hidden:
            layers.append(nn.Linear(width, hidden, bias=spec.norm == "none"))
            if spec.norm == "batch":
                layers.append(nn.BatchNorm1d(hidden))
            elif spec.norm == "layer":
                layers.append(nn.LayerNorm(hidden))
            layers.append(_ACTIVATIONS[spec.activation]())
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)
    raise TypeError(f"no builder for head {type(spec).__name__}")  # a spec without a builder is a bug


def _replace(model: nn.Module, path: str, module: nn.Module) -> nn.Module:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, name) if not name.isdigit() else parent[int(name)]
    if name.isdigit():
        parent[int(name)] = module
    else:
        setattr(parent, name, module)
    return old


def _first_linear(module: nn.Module) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"{type(module).__name__} has no linear layer")
    return linears[0]


def model_layout(model: nn.Module) -> ModelLayout:
    """The layout recorded in ``model.model_meta`` (the defaults, classifier ``fc``, when there is none)."""
    meta = getattr(model, "model_meta", None)
    return ModelLayout() if meta is None else meta.layout


def get_classifier(model: nn.Module) -> nn.Module:
    """The model's classifier module (timm's ``get_classifier``), found through its spec."""
    return model.get_submodule(model_layout(model).classifier)


def classifier_in_features(model: nn.Module) -> int:
    """Width of the features the classifier takes (the input of its first linear layer)."""
    return _first_linear(get_classifier(model)).in_features


def reset_classifier(model: nn.Module, num_classes: int, head: Any = None) -> nn.Module:
    """Replace the classifier, in place, by a fresh one with ``num_classes`` outputs (timm's
    ``reset_classifier``); ``head`` says which (a plain linear layer by default).

    Returns:
        The classifier that was replaced.
    """
    in_features = classifier_in_features(model)
    spec = head if head is not None else LinearHead(type="linear")
    return _replace(model, model_layout(model).classifier, build_head(spec, in_features, num_classes))


def apply_neck_and_head(model: nn.Module, neck: Any, head: Any, num_classes: int) -> nn.Module:
    """Swap the model's pooling and/or classifier for the given ones, in place.

    Raises:
        RecipeError: The family does not say where its pooling is (for a neck).
    """
    layout = model_layout(model)
    if neck is not None:
        if layout.pool is None:
            name = getattr(getattr(model, "model_meta", None), "name", type(model).__name__)
            raise RecipeError(f"model.neck: {name} has no replaceable pooling layer; use its own pooling")
        _replace(model, layout.pool, build_neck(neck))
    if head is not None:
        reset_classifier(model, num_classes, head)
    return model
