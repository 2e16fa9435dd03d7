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

from clsctl.models._meta import CamReshape, LayerGroups, ModelLayout, PretrainedWeights

TV_URL = "https://download.pytorch.org/models/"
TV_SOURCE = "torchvision weights metadata (num_params)"

# Evaluation resize of the published weights whose transforms differ from "shorter edge to crop / 0.875,
# bilinear": (resize_size, interpolation) from torchvision's ``Weights.transforms()``, keyed by weights file.
# tests/test_models_eval_meta.py recomputes every variant's pair from torchvision.
TV_EVAL_RESIZE: dict[str, tuple[int, str]] = {
    "convnext_tiny-983f1562.pth": (236, "bilinear"),
    "convnext_small-0c510722.pth": (230, "bilinear"),
    "convnext_base-6075fbad.pth": (232, "bilinear"),
    "convnext_large-ea097f82.pth": (232, "bilinear"),
    "efficientnet_b0_rwightman-7f5810bc.pth": (256, "bicubic"),
    "efficientnet_b1-c27df63c.pth": (255, "bilinear"),
    "efficientnet_b2_rwightman-c35c1473.pth": (288, "bicubic"),
    "efficientnet_b3_rwightman-b3899882.pth": (320, "bicubic"),
    "efficientnet_b4_rwightman-23ab8bcd.pth": (384, "bicubic"),
    "efficientnet_b5_lukemelas-1a07897c.pth": (456, "bicubic"),
    "efficientnet_b6_lukemelas-24a108a5.pth": (528, "bicubic"),
    "efficientnet_b7_lukemelas-c5b4e57e.pth": (600, "bicubic"),
    "efficientnet_v2_s-dd5fe13b.pth": (384, "bilinear"),
    "efficientnet_v2_m-dc08266a.pth": (480, "bilinear"),
    "efficientnet_v2_l-59c71312.pth": (480, "bicubic"),
    "mnasnet0_75-7090bc5f.pth": (232, "bilinear"),
    "mnasnet1_3-a4c69d6f.pth": (232, "bilinear"),
    "mobilenet_v2-7ebf99e0.pth": (232, "bilinear"),
    "mobilenet_v3_large-5c1a4163.pth": (232, "bilinear"),
    "regnet_x_400mf-62229a5f.pth": (232, "bilinear"),
    "regnet_x_800mf-94a99ebd.pth": (232, "bilinear"),
    "regnet_x_1_6gf-a12f2b72.pth": (232, "bilinear"),
    "regnet_x_3_2gf-7071aa85.pth": (232, "bilinear"),
    "regnet_x_8gf-2b70d774.pth": (232, "bilinear"),
    "regnet_x_16gf-ba3796d7.pth": (232, "bilinear"),
    "regnet_x_32gf-6eb8fdc6.pth": (232, "bilinear"),
    "regnet_y_400mf-e6988f5f.pth": (232, "bilinear"),
    "regnet_y_800mf-58fc7688.pth": (232, "bilinear"),
    "regnet_y_1_6gf-0d7bc02a.pth": (232, "bilinear"),
    "regnet_y_3_2gf-9180c971.pth": (232, "bilinear"),
    "regnet_y_8gf-dc2b1b54.pth": (232, "bilinear"),
    "regnet_y_16gf-3e4a00f9.pth": (232, "bilinear"),
    "regnet_y_32gf-8db6d4b5.pth": (232, "bilinear"),
    "regnet_y_128gf_swag-c8ce3e52.pth": (384, "bicubic"),
    "resnext50_32x4d-1a0047aa.pth": (232, "bilinear"),
    "resnext101_32x8d-110c445d.pth": (232, "bilinear"),
    "resnext101_64x4d-173b62eb.pth": (232, "bilinear"),
    "shufflenetv2_x1_5-3c479a10.pth": (232, "bilinear"),
    "shufflenetv2_x2_0-8be3c8ee.pth": (232, "bilinear"),
    "swin_t-704ceda3.pth": (232, "bicubic"),
    "swin_s-5e29d889.pth": (246, "bicubic"),
    "swin_b-68c6b09e.pth": (238, "bicubic"),
    "swin_v2_t-b137f0e2.pth": (260, "bicubic"),
    "swin_v2_s-637d8ceb.pth": (260, "bicubic"),
    "swin_v2_b-781e5279.pth": (272, "bicubic"),
    "vit_l_16-852ce7e3.pth": (242, "bilinear"),
    "wide_resnet50_2-9ba9bcbe.pth": (232, "bilinear"),
    "wide_resnet101_2-d733dc28.pth": (232, "bilinear"),
}


def tv_eval(weights_file: str | None) -> dict[str, Any]:
    """``eval_resize`` and ``interpolation`` metadata of torchvision weights (empty: the 87.5 % bilinear default)."""
    if weights_file is None or weights_file not in TV_EVAL_RESIZE:
        return {}
    resize, interpolation = TV_EVAL_RESIZE[weights_file]
    return {"eval_resize": resize, "interpolation": interpolation}



def tv_meta(family: str, params: int, gflops: float | None, weights_file: str | None, *, classifier: str,
            cam_layer: str, pool: str | None = None, input_size: tuple[int, int] = (224, 224),
            weights: str = "IMAGENET1K_V1", stages: Sequence[Sequence[str]] = (),
            cam_reshape: CamReshape | None = None, first_conv: str | None = None,
            layer_groups: LayerGroups | None = None) -> dict[str, Any]:
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
        stages: Stem and stage paths (for ``frozen_stages``).
        cam_reshape: How the CAM layer's output becomes a feature map (``vit``, ``swin``).
        first_conv: Module path of the first convolution.
        layer_groups: Layers for layer-wise lr decay.
    """
    published = None
    if weights_file is not None:
        published = PretrainedWeights(url=TV_URL + weights_file, source=f"torchvision {weights}",
                                      class_names="imagenet-1k")
    layout = ModelLayout(classifier=classifier, pool=pool, stages=stages, first_conv=first_conv, cam_layer=cam_layer,
                         cam_reshape=cam_reshape, layer_groups=layer_groups)
    return dict(
        family=family, num_params=params, flops=None if gflops is None else gflops * 1e9, input_size=input_size,
        param_source=TV_SOURCE, flops_source="torchvision weights metadata (_ops)", weights=published,
        layout=layout, **tv_eval(weights_file),
    )


def feature_stages(*groups: Sequence[int], prefix: str = "features") -> list[list[str]]:
    """``ModelLayout.stages`` from groups of child indices of a ``Sequential``: the stem's first, then each stage's.

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
