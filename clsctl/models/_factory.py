"""The model registry, ``register_model`` and ``create_model``."""

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
    from clsctl.hf_hub import hub_model_meta, is_hf_hub_name
    from clsctl.models.timm_models import is_timm_name, timm_model_meta

    if is_hf_hub_name(name):
        return hub_model_meta(name)
    if is_timm_name(name):
        return timm_model_meta(name)
    return MODELS.get(name).meta


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
    from clsctl.hf_hub import create_hub_model, is_hf_hub_name
    from clsctl.models.timm_models import create_timm_model, is_timm_name
    from clsctl.models.weights import load_pretrained, load_weights_file

    if is_hf_hub_name(name):
        return create_hub_model(name, pretrained, num_classes, weights=weights, **kwargs)
    if is_timm_name(name):
        return create_timm_model(name, pretrained, num_classes, weights=weights, **kwargs)
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
