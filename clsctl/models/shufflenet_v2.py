"""ShuffleNet V2 (Ma et al., 2018) 0.5x/1.0x/1.5x/2.0x on torchvision's constructors (the widths of
the MegEngine and MMPretrain tables).

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import tv_build, tv_meta


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("shufflenet_v2", params, gflops, weights_file, classifier="fc", cam_layer="conv5",
                   input_size=(size, size), weights=weights,
                   stages=[["conv1"], ["stage2"], ["stage3"], ["stage4", "conv5"]])


@register_model(**_meta(1_366_792, 0.04, "shufflenetv2_x0.5-f707e7126e.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x0_5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 0.5x."""
    return tv_build("shufflenet_v2_x0_5", num_classes, **kwargs)


@register_model(**_meta(2_278_604, 0.145, "shufflenetv2_x1-5666bf0f80.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x1_0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 1.0x."""
    return tv_build("shufflenet_v2_x1_0", num_classes, **kwargs)


@register_model(**_meta(3_503_624, 0.296, "shufflenetv2_x1_5-3c479a10.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x1_5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 1.5x."""
    return tv_build("shufflenet_v2_x1_5", num_classes, **kwargs)


@register_model(**_meta(7_393_996, 0.583, "shufflenetv2_x2_0-8be3c8ee.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x2_0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 2.0x."""
    return tv_build("shufflenet_v2_x2_0", num_classes, **kwargs)
