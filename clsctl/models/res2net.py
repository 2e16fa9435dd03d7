"""Res2Net (Gao et al., 2021): bottlenecks whose 3x3 conv is split into ``scale`` hierarchical groups.

Built on :class:`clsctl.models.resnet.ResNet` (same stem, stages, ``fc`` and options). In each block the 1x1
reduction gives ``scale`` groups of ``width`` channels; group ``i`` goes through its own 3x3 conv after adding
the previous group's output, and the last group passes through unchanged (average-pooled in a stage's first
block). Module names follow the official implementation (``convs``, ``bns``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models.resnet import RESNET_LAYOUT, Bottleneck, ResNet


class Bottle2neck(Bottleneck):
    """A Res2Net bottleneck; ``base_width`` is the width of one group (26 in Res2Net-50 26w x 4s)."""

    scale = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 26) -> None:
        nn.Module.__init__(self)  # Bottleneck's layers differ; only its type (for zero_init_residual) is shared
        if groups != 1:
            raise ValueError("Res2Net blocks do not take groups")
        width = int(math.floor(planes * base_width / 64.0))
        self.width = width
        self.first = downsample is not None  # a stage's first block: no hierarchy, pooled pass-through
        self.conv1 = nn.Conv2d(in_ch, width * self.scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * self.scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, stride, 1, bias=False) for _ in range(self.scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.scale - 1))
        self.pool = nn.AvgPool2d(3, stride, 1) if self.first else nn.Identity()
        self.conv3 = nn.Conv2d(width * self.scale, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        splits = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, 1)
        outs = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            part = splits[i] if i == 0 or self.first else outs[-1] + splits[i]
            outs.append(self.relu(bn(conv(part))))
        outs.append(self.pool(splits[-1]))
        out = self.bn3(self.conv3(torch.cat(outs, 1)))
        return self.relu(out + identity)


@register_model(family="res2net", num_params=25_699_120, flops=4_280_481_824,
                param_source="Res2Net paper Table 2 (25.7M, rounded)",
                layout=RESNET_LAYOUT, paper_params="25.7")
def res2net50(*, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """Res2Net-50, 26w x 4s."""
    return ResNet(Bottle2neck, [3, 4, 6, 3], num_classes, width_per_group=26, **kwargs)
