"""CIFAR ResNets of He et al. (2016), section 4.2: ResNet-20/32/44/56/110.

Three stages of 16, 32 and 64 channels with ``n`` basic blocks each (depth = 6n + 2), a 3x3 stem and global
pooling. Shortcuts that change shape use a 1x1 projection ("option B"), so the parameter counts are a little
above the paper's rounded figures (0.27M, 0.46M, 0.66M, 0.85M, 1.7M), which used parameter-free padding.
"""

from __future__ import annotations

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import ModelLayout
from clsctl.models._init import kaiming_convs_and_unit_norms, normal_head, zero_init_norms
from clsctl.models.resnet import BasicBlock, last_residual_norms

_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images.

    Args:
        depth: Network depth; must be 6n + 2.
        num_classes: Classifier size.
        base_width: Channels of the first stage (doubled at each of the next two).
        zero_init_residual: Start each block's last BN at zero (MMPretrain's ``ResNet_CIFAR`` inherits this
            default from its ``ResNet``); ``False`` keeps it at one.

    A fresh model is initialised as MMPretrain's ResNet (``mmpretrain/models/backbones/resnet_cifar.py``):
    Kaiming-normal convs, BatchNorm 1/0, the last BN of each block at 0, classifier ~ N(0, 0.01) with bias 0.
    """

    def __init__(self, depth: int, num_classes: int = 10, *, base_width: int = 16,
                 zero_init_residual: bool = True) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, base_width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        in_ch = base_width
        stages = []
        for i in range(3):
            width = base_width * 2**i
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(blocks):
                downsample = None
                if j == 0 and (stride != 1 or in_ch != width):
                    downsample = nn.Sequential(nn.Conv2d(in_ch, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
                layers.append(BasicBlock(in_ch, width, stride if j == 0 else 1, downsample))
                in_ch = width
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_ch
        self.fc = nn.Linear(in_ch, num_classes)
        kaiming_convs_and_unit_norms(self)
        normal_head(self.fc)
        if zero_init_residual:
            zero_init_norms(last_residual_norms(self))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage."""
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


_STAGES = [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"]]


def _meta(params: int, paper: str, flops: int) -> dict:
    return dict(family="resnet_cifar", input_size=(32, 32), mean=_CIFAR_MEAN, std=_CIFAR_STD, num_classes=10,
                num_params=params, flops=flops,
                param_source=f"computed (He et al. 2016 Table 6 report {paper} with option A)",
                layout=ModelLayout(classifier="fc", pool="avgpool", cam_layer="layer3", stages=_STAGES, first_conv="conv1"),
                paper_params=paper, flops_source="fvcore count (computed)")


@register_model(**_meta(272_474, "0.27M", 41_218_688))
def resnet20_cifar(*, num_classes: int = 10, **kwargs: object) -> CifarResNet:
    """ResNet-20 for CIFAR."""
    return CifarResNet(20, num_classes, **kwargs)


@register_model(**_meta(466_906, "0.46M", 69_759_616))
def resnet32_cifar(*, num_classes: int = 10, **kwargs: object) -> CifarResNet:
    """ResNet-32 for CIFAR."""
    return CifarResNet(32, num_classes, **kwargs)


@register_model(**_meta(661_338, "0.66M", 98_300_544))
def resnet44_cifar(*, num_classes: int = 10, **kwargs: object) -> CifarResNet:
    """ResNet-44 for CIFAR."""
    return CifarResNet(44, num_classes, **kwargs)


@register_model(**_meta(855_770, "0.85M", 126_841_472))
def resnet56_cifar(*, num_classes: int = 10, **kwargs: object) -> CifarResNet:
    """ResNet-56 for CIFAR."""
    return CifarResNet(56, num_classes, **kwargs)


@register_model(**_meta(1_730_714, "1.7M", 255_275_648))
def resnet110_cifar(*, num_classes: int = 10, **kwargs: object) -> CifarResNet:
    """ResNet-110 for CIFAR."""
    return CifarResNet(110, num_classes, **kwargs)
