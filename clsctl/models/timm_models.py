"""``timm/<name>``: any timm model, when the ``[timm]`` extra is installed.

timm builds the model and fetches its pretrained weights (from the Hugging Face Hub or its URLs, through its
own cache); clsctl wraps that in a :class:`ModelMeta` made from timm's ``pretrained_cfg`` and turns failures
into one-line errors. timm is imported only when such a model is asked for. Importing this module registers
the ``timm/`` prefix with :func:`clsctl.models.create_model` and :func:`clsctl.models.model_info`.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.error import URLError

from torch import nn

from clsctl.errors import ClsctlError, UnknownNameError
from clsctl.models._factory import register_prefix
from clsctl.models._meta import (DEFAULT_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD, NUMBERED_BLOCKS, ModelLayout, ModelMeta,
                                 PretrainedWeights, TimmOrigin)
from clsctl.registry import unknown_name_message

PREFIX = "timm/"


def is_timm_name(name: str) -> bool:
    """Whether ``name`` asks for a timm model (``timm/resnet50.a1_in1k``)."""
    return name.strip().lower().startswith(PREFIX)


def _timm() -> ModuleType:
    try:
        return importlib.import_module("timm")
    except ImportError as exc:
        raise ClsctlError("timm models need the timm package: pip install clsctl[timm]") from exc


def _arch(name: str) -> str:
    arch = name.strip()[len(PREFIX):]
    timm = _timm()
    if not arch or not timm.is_model(arch):
        raise UnknownNameError(unknown_name_message("timm model", arch, list(timm.list_models())))
    return arch


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    return dict(cfg)


def _first_conv(value: Any) -> str | None:
    """timm's ``first_conv``: one path, or a sequence of them for models with several stems (the first is kept)."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return str(value) if value else None


def timm_model_meta(name: str) -> ModelMeta:
    """Metadata of ``timm/<arch>`` from timm's ``pretrained_cfg`` (input size, normalisation, weights).

    The parameter count is left empty: timm publishes none without building the model.
    """
    arch = _arch(name)
    cfg = _cfg_dict(_timm().get_pretrained_cfg(arch))
    size = tuple(cfg.get("input_size", (3, 224, 224)))[-2:]
    url = cfg.get("url") or None
    if url is None and cfg.get("hf_hub_id"):
        url = f"https://huggingface.co/{cfg['hf_hub_id']}"
    num_classes = int(cfg.get("num_classes") or 1000)
    origin = TimmOrigin(name=arch, hf_hub_id=cfg.get("hf_hub_id") or None,
                        hf_hub_filename=cfg.get("hf_hub_filename") or None,
                        # recorded only: clsctl evaluates with timm's default centre mode
                        crop_mode=cfg["crop_mode"] if cfg.get("crop_mode") not in (None, "center") else None)
    layout = ModelLayout(classifier=cfg.get("classifier", "fc"), first_conv=_first_conv(cfg.get("first_conv")),
                         layer_groups=NUMBERED_BLOCKS)
    weights = None
    if url is not None:
        weights = PretrainedWeights(url=url, source="timm", class_names="imagenet-1k" if num_classes == 1000 else None)
    # timm's evaluation transform: shorter edge to floor(size / crop_pct), then the centre crop.
    crop_pct = float(cfg.get("crop_pct") or DEFAULT_CROP_PCT)
    interpolation = cfg.get("interpolation") or "bilinear"
    return ModelMeta(
        name=PREFIX + arch, family="timm", input_size=(int(size[0]), int(size[1])),
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
        num_classes=num_classes, param_source="timm (not recorded)", weights=weights,
        eval_resize=math.floor(min(int(size[0]), int(size[1])) / crop_pct),
        interpolation=interpolation if interpolation in ("nearest", "bilinear", "bicubic") else "bilinear",
        layout=layout, timm=origin,
    )


def create_timm_model(name: str, pretrained: bool = False, num_classes: int | None = None, *,
                      weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """Build ``timm/<arch>`` with ``timm.create_model`` (timm's pretrained handling included).

    Args:
        name: ``timm/`` followed by a timm model name (with an optional ``.tag``).
        pretrained: Let timm fetch its published weights.
        num_classes: Classifier size; timm re-initialises a head of another size.
        weights: Local weights file (timm format or a clsctl checkpoint), loaded after building.
        **kwargs: Passed to ``timm.create_model`` (``drop_rate``, ``in_chans``, ...).

    Returns:
        The model with its :class:`ModelMeta` as ``model.model_meta``.
    """
    from dataclasses import replace

    from clsctl.models.weights import load_weights_file

    meta = timm_model_meta(name)
    origin = meta.timm
    assert origin is not None  # timm_model_meta records it
    arch = origin.name
    classes = num_classes if num_classes is not None else meta.num_classes
    if pretrained and origin.hf_hub_id and "pretrained_cfg_overlay" not in kwargs:
        # Through huggingface_hub's cache, so HF_HOME/HF_HUB_CACHE/HF_HUB_OFFLINE apply and a missing file is
        # one error line naming the repository and the cache; timm then loads that file (its key filters and
        # classifier handling included).
        from clsctl.hf_hub import timm_pretrained_file

        file = timm_pretrained_file(origin.hf_hub_id, origin.hf_hub_filename)
        kwargs["pretrained_cfg_overlay"] = {"file": str(file)}
    try:
        model = _timm().create_model(arch, pretrained=pretrained, num_classes=classes, **kwargs)
    except (URLError, OSError, ConnectionError) as exc:
        if not pretrained:
            raise
        raise ClsctlError(
            f"could not fetch timm's pretrained weights for '{arch}' ({exc}); timm downloads them from "
            f"{meta.pretrained_url} into the Hugging Face cache (HF_HOME) or torch.hub's cache: fetch them once on "
            "a machine with internet and copy that cache over"
        ) from exc
    model.model_meta = replace(meta, num_classes=classes, num_params=sum(p.numel() for p in model.parameters()),
                               param_source="timm (counted)")
    if weights is not None:
        load_weights_file(model, weights)
    return model


register_prefix(PREFIX, create=create_timm_model, info=timm_model_meta)
