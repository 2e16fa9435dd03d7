"""ShuffleNet V2 (Ma et al., 2018) 0.5x/1.0x/1.5x/2.0x on torchvision's constructors (the widths of
the MegEngine and MMPretrain tables).

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.

torchvision leaves PyTorch's default init; fresh models here are initialised as MMPretrain's
``ShuffleNetV2.init_weights`` (``mmpretrain/models/backbones/shufflenet_v2.py``): stem conv ~ N(0, 0.01), other
convs ~ N(0, 1 / input channels per group), BatchNorm weight 1 and bias 1e-4, and the classifier as its
``LinearClsHead``, ~ N(0, 0.01) with bias 0.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._init import normal_head, shufflenet_init
from clsctl.models._tv import tv_build, tv_meta


def _build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    model = tv_build(constructor, num_classes, **kwargs)
    shufflenet_init(model)
    normal_head(model.fc)
    return model


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("shufflenet_v2", params, gflops, weights_file, classifier="fc", cam_layer="conv5", first_conv="conv1.0",
                   input_size=(size, size), weights=weights,
                   stages=[["conv1"], ["stage2"], ["stage3"], ["stage4", "conv5"]])


@register_model(**_meta(1_366_792, 0.04, "shufflenetv2_x0.5-f707e7126e.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x0_5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 0.5x."""
    return _build("shufflenet_v2_x0_5", num_classes, **kwargs)


@register_model(**_meta(2_278_604, 0.145, "shufflenetv2_x1-5666bf0f80.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x1_0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 1.0x."""
    return _build("shufflenet_v2_x1_0", num_classes, **kwargs)


@register_model(**_meta(3_503_624, 0.296, "shufflenetv2_x1_5-3c479a10.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x1_5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 1.5x."""
    return _build("shufflenet_v2_x1_5", num_classes, **kwargs)


@register_model(**_meta(7_393_996, 0.583, "shufflenetv2_x2_0-8be3c8ee.pth", "IMAGENET1K_V1"))
def shufflenet_v2_x2_0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ShuffleNet V2 2.0x."""
    return _build("shufflenet_v2_x2_0", num_classes, **kwargs)
