"""EfficientNetV2 S/M/L (Tan & Le, 2021) on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import feature_stages, tv_build, tv_meta


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224,
          num_stages: int = 7) -> dict[str, Any]:
    # Stem, the MBConv / Fused-MBConv stages (6 in S, 7 in M and L); the final 1x1 conv goes with the last.
    stages = feature_stages([0], *([i] for i in range(1, num_stages)), [num_stages, num_stages + 1])
    return tv_meta("efficientnet_v2", params, gflops, weights_file,
                   classifier="classifier.1", pool="avgpool", cam_layer="features",
                   input_size=(size, size), weights=weights, stages=stages)


@register_model(**_meta(21_458_488, 8.366, "efficientnet_v2_s-dd5fe13b.pth", "IMAGENET1K_V1", 384, num_stages=6))
def efficientnet_v2_s(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNetV2-S."""
    return tv_build("efficientnet_v2_s", num_classes, **kwargs)


@register_model(**_meta(54_139_356, 24.582, "efficientnet_v2_m-dc08266a.pth", "IMAGENET1K_V1", 480))
def efficientnet_v2_m(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNetV2-M."""
    return tv_build("efficientnet_v2_m", num_classes, **kwargs)


@register_model(**_meta(118_515_272, 56.08, "efficientnet_v2_l-59c71312.pth", "IMAGENET1K_V1", 480))
def efficientnet_v2_l(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """EfficientNetV2-L."""
    return tv_build("efficientnet_v2_l", num_classes, **kwargs)
