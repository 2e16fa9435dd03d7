"""Shared helpers for families built on torchvision's constructors.

torchvision is imported only when a model is built, so that importing :mod:`clsctl.models` (which registers
every variant) stays fast. Parameter counts, FLOPs and weight URLs are copied from torchvision's weights
metadata as data, so registration needs no torchvision either.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from torch import nn

TV_URL = "https://download.pytorch.org/models/"
TV_SOURCE = "torchvision weights metadata (num_params)"


def tv_meta(family: str, params: int, gflops: float | None, weights_file: str | None, *, classifier: str,
            cam_layer: str, pool: str | None = None, input_size: tuple[int, int] = (224, 224),
            weights: str = "IMAGENET1K_V1", **extra: Any) -> dict[str, Any]:
    """``register_model`` keyword arguments for a torchvision-based ImageNet variant.

    Args:
        family: Family name.
        params: torchvision's published ``num_params``.
        gflops: torchvision's published ``_ops`` (GFLOPS, counted as multiply-adds).
        weights_file: File name of the published weights under ``download.pytorch.org/models/``.
        classifier: Module path of the final linear layer.
        cam_layer: Module path of the default Grad-CAM target layer.
        pool: Module path of the global pooling layer (output ``(N, C, 1, 1)``), where it is a module that
            a recipe's neck can replace.
        input_size: Evaluation crop of the published weights.
        weights: Name of the torchvision weights enum member the numbers come from.
        **extra: More ``ModelMeta.extra`` entries (``stages`` for ``frozen_stages``, ``cam_reshape``).
    """
    if pool is not None:
        extra["pool"] = pool
    return dict(
        family=family, num_params=params, flops=None if gflops is None else gflops * 1e9, input_size=input_size,
        param_source=TV_SOURCE, pretrained_url=None if weights_file is None else TV_URL + weights_file,
        class_names="imagenet-1k",
        extra={"classifier": classifier, "cam_layer": cam_layer, "torchvision_weights": weights,
               "flops_source": "torchvision weights metadata (_ops)", **extra},
    )


def feature_stages(*groups: Sequence[int], prefix: str = "features") -> list[list[str]]:
    """``extra["stages"]`` from groups of child indices of a ``Sequential``: the stem's first, then each stage's.

    ``feature_stages([0], [1], [2, 3])`` is ``[["features.0"], ["features.1"], ["features.2", "features.3"]]``.
    """
    return [[f"{prefix}.{i}" for i in group] for group in groups]


def tv_build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Call ``torchvision.models.<constructor>(weights=None, num_classes=..., **kwargs)``."""
    module = importlib.import_module("torchvision.models")
    return getattr(module, constructor)(weights=None, num_classes=num_classes, **kwargs)


def tv_class(path: str) -> type:
    """Import a torchvision class lazily, e.g. ``tv_class("vision_transformer.VisionTransformer")``."""
    module_name, _, cls = path.rpartition(".")
    return getattr(importlib.import_module(f"torchvision.models.{module_name}"), cls)
