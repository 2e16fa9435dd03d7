"""EfficientNet B0-B7 (Tan & Le, 2019) on torchvision's constructors; input sizes are those of the
published weights.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.

Fresh models follow MMPretrain's ``EfficientNet`` (``mmpretrain/models/backbones/efficientnet.py`` and
``configs/_base_/models/efficientnet_b*.py``): no drop-path and no dropout before the classifier (torchvision's
constructors default to drop-path 0.2 and dropout 0.2-0.5; pass ``stochastic_depth_prob`` / ``dropout`` for
those), BatchNorm momentum 0.1 (torchvision's B5-B7: 0.01), and the classifier of its ``LinearClsHead``,
~ N(0, 0.01) with bias 0 (torchvision: uniform). BatchNorm eps stays torchvision's (1e-5 in B0-B4, 1e-3 in
B5-B7, MMPretrain: 1e-3): it changes the outputs of the published weights, which were trained with it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._init import normal_head, set_batchnorm
from clsctl.models._tv import feature_stages, tv_build, tv_meta

# Stem, the seven MBConv stages (MMPretrain's layers); the final 1x1 conv goes with the last stage.
_STAGES = feature_stages([0], [1], [2], [3], [4], [5], [6], [7, 8])


def _build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    kwargs.setdefault("dropout", 0.0)
    kwargs.setdefault("stochastic_depth_prob", 0.0)
    model = tv_build(constructor, num_classes, **kwargs)
    set_batchnorm(model, momentum=0.1)  # torchvision's B5-B7: 0.01
    normal_head(model.classifier[1])
    return model


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("efficientnet", params, gflops, weights_file,
                   classifier="classifier.1", pool="avgpool", cam_layer="features", first_conv="features.0.0",
                   input_size=(size, size), weights=weights, stages=_STAGES)


@register_model(**_meta(5_288_548, 0.386, "efficientnet_b0_rwightman-7f5810bc.pth", "IMAGENET1K_V1"))
def efficientnet_b0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B0."""
    return _build("efficientnet_b0", num_classes, **kwargs)


@register_model(**_meta(7_794_184, 0.687, "efficientnet_b1-c27df63c.pth", "IMAGENET1K_V2", 240))
def efficientnet_b1(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B1."""
    return _build("efficientnet_b1", num_classes, **kwargs)


@register_model(**_meta(9_109_994, 1.088, "efficientnet_b2_rwightman-c35c1473.pth", "IMAGENET1K_V1", 288))
def efficientnet_b2(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B2."""
    return _build("efficientnet_b2", num_classes, **kwargs)


@register_model(**_meta(12_233_232, 1.827, "efficientnet_b3_rwightman-b3899882.pth", "IMAGENET1K_V1", 300))
def efficientnet_b3(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B3."""
    return _build("efficientnet_b3", num_classes, **kwargs)


@register_model(**_meta(19_341_616, 4.394, "efficientnet_b4_rwightman-23ab8bcd.pth", "IMAGENET1K_V1", 380))
def efficientnet_b4(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B4."""
    return _build("efficientnet_b4", num_classes, **kwargs)


@register_model(**_meta(30_389_784, 10.266, "efficientnet_b5_lukemelas-1a07897c.pth", "IMAGENET1K_V1", 456))
def efficientnet_b5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B5."""
    return _build("efficientnet_b5", num_classes, **kwargs)


@register_model(**_meta(43_040_704, 19.068, "efficientnet_b6_lukemelas-24a108a5.pth", "IMAGENET1K_V1", 528))
def efficientnet_b6(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B6."""
    return _build("efficientnet_b6", num_classes, **kwargs)


@register_model(**_meta(66_347_960, 37.746, "efficientnet_b7_lukemelas-c5b4e57e.pth", "IMAGENET1K_V1", 600))
def efficientnet_b7(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNet-B7."""
    return _build("efficientnet_b7", num_classes, **kwargs)
