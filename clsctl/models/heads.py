"""Necks (pooling) and heads (classifiers) on any registered model, and timm-like classifier access.

A family names, in its spec, the module that pools (``ModelLayout.pool``) and the final classifier
(``ModelLayout.classifier``). A neck replaces the pooling module and a head replaces the classifier, in place, so
every other parameter keeps its (torchvision-compatible) name. :func:`get_classifier` and
:func:`reset_classifier` are the counterparts of timm's methods of those names, for every family.

This module takes plain :class:`NeckSpec` / :class:`HeadSpec` values, so the models layer never imports the
recipe layer: :func:`neck_spec_from_recipe` and :func:`head_spec_from_recipe` read the recipe's ``model.neck``
and ``model.head`` sections as plain data (what ``Recipe.to_dict()`` writes into checkpoints and Hub
``config.json`` files); ``clsctl.engine.build`` hands them validated recipe sections dumped to that data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from clsctl.errors import RecipeError
from clsctl.models._meta import ModelLayout

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class NeckSpec:
    """A global pooling to ``(N, C, 1, 1)``.

    Attributes:
        kind: ``gap`` (average) or ``gem`` (generalized mean).
        p: GeM's initial exponent.
        learnable: Train GeM's ``p``.
        eps: GeM's floor of the activations.
    """

    kind: Literal["gap", "gem"] = "gap"
    p: float = 3.0
    learnable: bool = True
    eps: float = 1e-6


@dataclass(frozen=True)
class HeadSpec:
    """A classifier mapping pooled features to class scores.

    Attributes:
        kind: ``linear`` (optionally after dropout), ``pre_logits`` (linear to ``hidden[0]``, tanh, linear) or
            ``stacked`` (per hidden width: linear, optional norm, activation, optional dropout; then linear).
        hidden: Hidden widths (``pre_logits``: one; ``stacked``: one or more).
        dropout: Dropout before the linear classifier (``linear``) or after each hidden layer (``stacked``).
        activation: Activation of a stacked head (``relu``, ``gelu``, ``silu``, ``tanh``).
        norm: Norm of a stacked head's hidden layers (``none``, ``batch``, ``layer``).
    """

    kind: Literal["linear", "pre_logits", "stacked"] = "linear"
    hidden: tuple[int, ...] = ()
    dropout: float = 0.0
    activation: str = "relu"
    norm: Literal["none", "batch", "layer"] = "none"


# Defaults of the recipe schema's neck and head sections (clsctl.recipe.schema), for keys a section leaves out;
# tests/test_heads.py checks them against the schema.
_RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gem": {"p": 3.0, "learnable": True, "eps": 1e-6},
    "linear": {"dropout": 0.0},
    "multi_label_linear": {"dropout": 0.0},
    "vit_pre_logits": {"hidden": 768},
    "stacked": {"dropout": 0.0, "activation": "relu", "norm": "none"},
}


def _section(section: Mapping[str, Any], key: str, kinds: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """``(type, options with the schema's defaults filled in)`` of a recipe section given as plain data."""
    kind = section.get("type")
    if kind not in kinds:
        raise RecipeError(f"model.{key}.type: expected one of {', '.join(kinds)} (got {kind!r})")
    return kind, {**_RECIPE_DEFAULTS.get(kind, {}), **section}


def neck_spec_from_recipe(section: Mapping[str, Any] | None) -> NeckSpec | None:
    """The :class:`NeckSpec` of a recipe's ``model.neck`` given as plain data (``{"type": "gem", "p": 4}``)."""
    if section is None:
        return None
    kind, options = _section(section, "neck", ("gap", "gem"))
    if kind == "gem":
        return NeckSpec(kind="gem", p=float(options["p"]), learnable=bool(options["learnable"]),
                        eps=float(options["eps"]))
    return NeckSpec(kind="gap")


def head_spec_from_recipe(section: Mapping[str, Any] | None) -> HeadSpec | None:
    """The :class:`HeadSpec` of a recipe's ``model.head`` given as plain data (``{"type": "stacked", ...}``)."""
    if section is None:
        return None
    kind, options = _section(section, "head", ("linear", "multi_label_linear", "vit_pre_logits", "stacked"))
    if kind in ("linear", "multi_label_linear"):
        return HeadSpec(kind="linear", dropout=float(options["dropout"]))
    if kind == "vit_pre_logits":
        return HeadSpec(kind="pre_logits", hidden=(int(options["hidden"]),))
    if not options.get("hidden"):
        raise RecipeError("model.head.hidden: a stacked head needs at least one hidden width")
    return HeadSpec(kind="stacked", hidden=tuple(int(h) for h in options["hidden"]), dropout=float(options["dropout"]),
                    activation=str(options["activation"]), norm=options["norm"])


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


def build_neck(spec: NeckSpec) -> nn.Module:
    """The pooling module of a neck (output ``(N, C, 1, 1)``)."""
    if spec.kind == "gem":
        return GeM(spec.p, spec.learnable, spec.eps)
    return nn.AdaptiveAvgPool2d(1)


def build_head(spec: HeadSpec, in_features: int, num_classes: int) -> nn.Module:
    """The classifier a head spec describes, mapping ``in_features`` to ``num_classes`` scores."""
    if spec.kind == "linear":
        linear = nn.Linear(in_features, num_classes)
        return nn.Sequential(nn.Dropout(spec.dropout), linear) if spec.dropout > 0 else linear
    if spec.kind == "pre_logits":
        hidden = spec.hidden[0]
        return nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))
    if spec.kind == "stacked":
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
    raise TypeError(f"no builder for head kind {spec.kind!r}")


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


def reset_classifier(model: nn.Module, num_classes: int, head: HeadSpec | None = None) -> nn.Module:
    """Replace the classifier, in place, by a fresh one with ``num_classes`` outputs (timm's
    ``reset_classifier``); ``head`` says which (a plain linear layer by default).

    Returns:
        The classifier that was replaced.
    """
    in_features = classifier_in_features(model)
    return _replace(model, model_layout(model).classifier, build_head(head or HeadSpec(), in_features, num_classes))


def apply_neck_and_head(model: nn.Module, neck: NeckSpec | None, head: HeadSpec | None,
                        num_classes: int) -> nn.Module:
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
