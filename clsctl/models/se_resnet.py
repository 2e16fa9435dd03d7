"""SE-ResNet (Hu et al., 2018): ResNet bottlenecks with squeeze-excitation, reduction 16.

Built on :class:`clsctl.models.resnet.ResNet` (torchvision's layout plus an ``se`` module per block), so the
ResNet options (``frozen_stages``, ``cifar_stem``, ...) apply. Counts: MMPretrain's SE-ResNet table (0.01M).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models.resnet import RESNET_LAYOUT, Bottleneck, ResNet


class SELayer(nn.Module):
    """Squeeze-excitation: global pooling, 1x1 conv to ``channels / ratio``, ReLU, 1x1 conv back, sigmoid."""

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // ratio, 1)
        self.conv2 = nn.Conv2d(channels // ratio, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.relu(self.conv1(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.conv2(scale))


class SEBottleneck(Bottleneck):
    """A ResNet bottleneck whose residual branch is rescaled by squeeze-excitation before the addition."""

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__(in_ch, planes, stride, downsample, groups, base_width)
        self.se = SELayer(planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


def _meta(params: int, published: str, gflops: float) -> dict[str, Any]:
    return dict(family="se_resnet", num_params=params, flops=gflops * 1e9,
                param_source=f"MMPretrain SE-ResNet table ({published}M, rounded)",
                layout=RESNET_LAYOUT, paper_params=published)


@register_model(**_meta(28_088_024, "28.09", 4.13))
def se_resnet50(*, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """SE-ResNet-50."""
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes, **kwargs)


@register_model(**_meta(49_326_872, "49.33", 7.86))
def se_resnet101(*, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """SE-ResNet-101."""
    return ResNet(SEBottleneck, [3, 4, 23, 3], num_classes, **kwargs)
