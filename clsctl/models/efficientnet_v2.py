"""EfficientNetV2 S/M/L (Tan & Le, 2021) on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.

Fresh models follow MMPretrain's ``EfficientNetV2`` (``mmpretrain/models/backbones/efficientnet_v2.py`` and
``configs/_base_/models/efficientnet_v2/efficientnet_v2_*.py``): no drop-path and no dropout before the classifier (torchvision's
constructors default to drop-path 0.2 and dropout 0.2-0.5; pass ``stochastic_depth_prob`` / ``dropout`` for
those), BatchNorm eps 1e-3 and momentum 0.1 (as torchvision), and the classifier of its
``LinearClsHead``, ~ N(0, 0.01) with bias 0 (torchvision: uniform).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._init import normal_head
from clsctl.models._tv import feature_stages, tv_build, tv_meta


def _build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    kwargs.setdefault("dropout", 0.0)
    kwargs.setdefault("stochastic_depth_prob", 0.0)
    model = tv_build(constructor, num_classes, **kwargs)
    normal_head(model.classifier[1])
    return model


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224,
          num_stages: int = 7) -> dict[str, Any]:
    # Stem, the MBConv / Fused-MBConv stages (6 in S, 7 in M and L); the final 1x1 conv goes with the last.
    stages = feature_stages([0], *([i] for i in range(1, num_stages)), [num_stages, num_stages + 1])
    return tv_meta("efficientnet_v2", params, gflops, weights_file,
                   classifier="classifier.1", pool="avgpool", cam_layer="features", first_conv="features.0.0",
                   input_size=(size, size), weights=weights, stages=stages)


@register_model(**_meta(21_458_488, 8.366, "efficientnet_v2_s-dd5fe13b.pth", "IMAGENET1K_V1", 384, num_stages=6))
def efficientnet_v2_s(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNetV2-S."""
    return _build("efficientnet_v2_s", num_classes, **kwargs)


@register_model(**_meta(54_139_356, 24.582, "efficientnet_v2_m-dc08266a.pth", "IMAGENET1K_V1", 480))
def efficientnet_v2_m(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNetV2-M."""
    return _build("efficientnet_v2_m", num_classes, **kwargs)


@register_model(**_meta(118_515_272, 56.08, "efficientnet_v2_l-59c71312.pth", "IMAGENET1K_V1", 480))
def efficientnet_v2_l(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNetV2-L."""
    return _build("efficientnet_v2_l", num_classes, **kwargs)
