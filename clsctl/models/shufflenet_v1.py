"""ShuffleNet V1 (Zhang et al., 2018) 1.0x with 3 groups, the variant of the MegEngine and MMPretrain tables.

Stages of 240, 480 and 960 channels with 4, 8 and 4 units after a 24-channel 3x3 stem and max-pool. A unit is
a grouped 1x1 compression to a quarter of the output width, a channel shuffle, a 3x3 depthwise conv and a
grouped 1x1 expansion; the first unit of a stage has stride 2 and concatenates an average-pooled shortcut,
and the very first 1x1 is not grouped (its input has only 24 channels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import LayerGroups, ModelLayout
from clsctl.models._init import normal_head, shufflenet_init


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups so the next grouped conv mixes them."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
             relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit; ``downsample`` units have stride 2 and concatenate a pooled shortcut."""

    def __init__(self, in_ch: int, out_ch: int, groups: int, *, downsample: bool, group_first: bool = True) -> None:
        super().__init__()
        mid = out_ch // 4
        self.groups = groups
        self.downsample = downsample
        branch_out = out_ch - in_ch if downsample else out_ch
        if not downsample and in_ch != out_ch:
            raise ValueError("a unit without downsampling keeps the width")
        self.compress = _conv_bn(in_ch, mid, 1, groups=groups if group_first else 1)
        self.depthwise = _conv_bn(mid, mid, 3, stride=2 if downsample else 1, groups=mid, relu=False)
        self.expand = _conv_bn(mid, branch_out, 1, groups=groups, relu=False)
        self.pool = nn.AvgPool2d(3, 2, 1) if downsample else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.compress(x), self.groups)
        out = self.expand(self.depthwise(out))
        if self.downsample:
            return self.relu(torch.cat([self.pool(x), out], 1))
        return self.relu(out + x)


class ShuffleNetV1(nn.Module):
    """ShuffleNet V1 classifier.

    Args:
        widths: Output channels of the three stages.
        blocks: Units per stage.
        groups: Groups of the 1x1 convs.
        num_classes: Classifier size.
        stem_width: Channels of the stem.

    A fresh model is initialised as MMPretrain's ``ShuffleNetV1.init_weights``
    (``mmpretrain/models/backbones/shufflenet_v1.py``): stem conv ~ N(0, 0.01), other convs ~ N(0, 1 / input
    channels per group), BatchNorm weight 1 and bias 1e-4; the classifier as its ``LinearClsHead``, ~ N(0, 0.01).
    """

    def __init__(self, widths: Sequence[int] = (240, 480, 960), blocks: Sequence[int] = (4, 8, 4), groups: int = 3,
                 num_classes: int = 1000, *, stem_width: int = 24) -> None:
        super().__init__()
        self.conv1 = _conv_bn(3, stem_width, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = stem_width
        stages = []
        for i, (width, count) in enumerate(zip(widths, blocks)):
            units = [ShuffleUnit(in_ch, width, groups, downsample=True, group_first=i > 0)]
            units += [ShuffleUnit(width, width, groups, downsample=False) for _ in range(count - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = width
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_ch
        self.fc = nn.Linear(in_ch, num_classes)
        shufflenet_init(self)
        normal_head(self.fc)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage."""
        return self.layers(self.maxpool(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


@register_model(family="shufflenet_v1", num_params=1_865_728, flops=143_505_312,
                param_source="MMPretrain ShuffleNet V1 table (1.87M, rounded)",
                layout=ModelLayout(classifier="fc", pool="avgpool", cam_layer="layers.2", first_conv="conv1.0",
                                   stages=[["conv1"], ["layers.0"], ["layers.1"], ["layers.2"]],
                                   layer_groups=LayerGroups(blocks=r"^layers\.(\d+)\.")),
                paper_params="1.87")
def shufflenet_v1_1_0x(*, num_classes: int = 1000, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet V1 1.0x, groups=3."""
    return ShuffleNetV1(num_classes=num_classes, **kwargs)
