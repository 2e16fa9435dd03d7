"""The model registry, ``register_model`` and ``create_model``.

Besides registered variants, names with a registered prefix are built by that prefix's module:
``timm/<name>`` (:mod:`clsctl.models.timm_models`) and ``hf-hub:<org>/<repo>`` (:mod:`clsctl.models.hub_models`)
call :func:`register_prefix` when imported, so this module imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clsctl.models._meta import ModelMeta
from clsctl.registry import Registry

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger("clsctl")


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its builder and metadata."""

    build: Callable[..., nn.Module]
    meta: ModelMeta


MODELS: Registry[ModelEntry] = Registry("model")


@dataclass(frozen=True)
class NamePrefix:
    """Models named ``<prefix><rest>`` and built outside the registry (``timm/``, ``hf-hub:``).

    Attributes:
        prefix: Lower-case prefix, e.g. ``timm/``; names match it whatever their case.
        create: ``create(name, pretrained, num_classes, *, weights, **kwargs) -> nn.Module``, as
            :func:`create_model`.
        info: ``info(name) -> ModelMeta``, as :func:`model_info`.
    """

    prefix: str
    create: Callable[..., nn.Module]
    info: Callable[[str], ModelMeta]


PREFIXES: dict[str, NamePrefix] = {}


def register_prefix(prefix: str, *, create: Callable[..., nn.Module], info: Callable[[str], ModelMeta]) -> None:
    """Let ``create_model`` and ``model_info`` hand names starting with ``prefix`` to ``create`` and ``info``."""
    PREFIXES[prefix.lower()] = NamePrefix(prefix.lower(), create, info)


def name_prefix(name: str) -> NamePrefix | None:
    """The registered prefix ``name`` starts with (case and surrounding spaces do not matter), if any."""
    lowered = name.strip().lower()
    return next((p for p in PREFIXES.values() if lowered.startswith(p.prefix)), None)


def register_model(*, family: str, name: str | None = None, **meta: Any) -> Callable:
    """Register a variant function ``fn(*, num_classes, **kwargs) -> nn.Module`` with its metadata.

    Args:
        family: Family the variant belongs to.
        name: Registered name (default: the function's name).
        **meta: Remaining :class:`ModelMeta` fields (``num_params``, ``input_size``, ...).
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        variant = name or fn.__name__
        MODELS.add(variant, ModelEntry(fn, ModelMeta(name=variant, family=family, **meta)))
        return fn

    return decorator


def list_models(pattern: str | None = None, *, pretrained: bool = False, reparameterizable: bool = False) -> list[str]:
    """Registered model names matching a shell wildcard, e.g. ``resnet*``.

    Args:
        pattern: Wildcard; a pattern without wildcards matches names containing it.
        pretrained: Only variants with published weights.
        reparameterizable: Only variants with a deploy form.
    """
    names = MODELS.names(pattern)
    if pretrained:
        names = [n for n in names if MODELS.get(n).meta.has_pretrained]
    if reparameterizable:
        names = [n for n in names if MODELS.get(n).meta.reparameterizable]
    return names


def model_info(name: str) -> ModelMeta:
    """Metadata of a registered variant, ``timm/<name>`` or ``hf-hub:<org>/<repo>`` (unknown names raise with
    suggestions)."""
    prefix = name_prefix(name)
    if prefix is not None:
        return prefix.info(name)
    return MODELS.get(name).meta


def random_weights_warning(name: str, *, weights: str | Path | None = None, pretrained: bool = False) -> str | None:
    """The warning for a registered model used without ``--weights`` or ``--pretrained``; None when it has weights.

    Args:
        name: Registered model name (``timm/...`` included).
        weights: The ``--weights`` file, if any.
        pretrained: Whether ``--pretrained`` was given.
    """
    if weights is not None or pretrained:
        return None
    meta = model_info(name)
    hint = ("add --pretrained for its published ImageNet weights, or --weights FILE" if meta.has_pretrained
            else "it has no published weights: give --weights FILE or a --checkpoint")
    return f"{meta.name} has random weights (no --weights or --pretrained): its predictions mean nothing; {hint}"


def create_model(
    name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    *,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: Registered name (``-``/``_`` and case do not matter), ``timm/<name>`` for a timm model, or
            ``hf-hub:<org>/<repo>`` for a timm or clsctl model published on the Hugging Face Hub.
        pretrained: Load the published weights (through torch.hub's cache; huggingface_hub's for Hub weights).
        num_classes: Size of the classifier; a head of another size than the weights' is re-initialised.
        weights: Local file with a state dict (torchvision format) or a clsctl checkpoint.
        **kwargs: Family options (``cifar_stem``, ``drop_rate``, ...). ``frozen_stages`` works for every
            registered family: ``-1`` freezes nothing, ``0`` the stem, ``k`` the stem and the first ``k`` stages
            (see :mod:`clsctl.models.freeze`); out of range raises ``FrozenStagesError`` (a ValueError).

    Returns:
        The model, with its :class:`ModelMeta` as ``model.model_meta``.
    """
    from clsctl.models.weights import load_pretrained, load_weights_file

    prefix = name_prefix(name)
    if prefix is not None:
        return prefix.create(name, pretrained, num_classes, weights=weights, **kwargs)
    from clsctl.models.freeze import frozen_paths, freeze_stages

    entry = MODELS.get(name)
    meta = entry.meta
    # Handled here for every family (builders never see it), checked before the possibly slow build.
    frozen_stages = kwargs.pop("frozen_stages", -1)
    frozen_paths(meta.layout.stages or [[]], frozen_stages)
    classes = num_classes if num_classes is not None else meta.num_classes
    model = entry.build(num_classes=classes, **kwargs)
    model.model_meta = replace(meta, num_classes=classes)
    if pretrained:
        load_pretrained(model, meta)
    if weights is not None:
        load_weights_file(model, weights)
    if frozen_stages >= 0:
        freeze_stages(model, frozen_stages)
    return model
