"""ResNet (He et al., 2016), ResNeXt and Wide ResNet with torchvision's parameter names.

The module layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``) is exactly torchvision's, so
torchvision checkpoints load as they are. Extra options:

* ``cifar_stem``: a 3x3 stride-1 first conv and no max-pool, for 32x32 inputs (MMPretrain's ResNet-CIFAR).
* ``deep_stem`` / ``avg_down``: the ResNet-V1c stem (three 3x3 convs, 32-32-64 channels, in ``conv1``) and
  the V1d shortcut (average pooling before a stride-1 1x1 conv), from "Bag of Tricks" (He et al., 2019); names
  as in timm's ``resnet50c``/``resnet50d``.

``frozen_stages`` (stem, then ``layer1`` to ``layer4``) is handled for every family by ``create_model`` through
:mod:`clsctl.models.freeze`, with the stages recorded in ``RESNET_LAYOUT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import ModelLayout, PretrainedWeights
from clsctl.models._init import kaiming_convs_and_unit_norms, normal_head, zero_init_norms
from clsctl.models._tv import tv_eval

_TV = "https://download.pytorch.org/models/"
_TV_SOURCE = "torchvision weights metadata (num_params)"
# Stem, then layer1..layer4: the units ``frozen_stages`` counts (see clsctl.models.freeze).
RESNET_STAGES = [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
RESNET_LAYOUT = ModelLayout(classifier="fc", pool="avgpool", cam_layer="layer4", stages=RESNET_STAGES, first_conv="conv1")
_DEEP_STEM_LAYOUT = replace(RESNET_LAYOUT, first_conv="conv1.0")  # ResNet-V1c/V1d: three convs in conv1


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, groups=groups, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and width_per_group=64")
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision's "ResNet v1.5"), 1x1 expand."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def last_residual_norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The last BatchNorm of each residual branch: ``bn2`` of basic blocks, ``bn3`` of bottlenecks."""
    return [m.bn3 if isinstance(m, Bottleneck) else m.bn2 for m in model.modules()
            if isinstance(m, (BasicBlock, Bottleneck))]


class ResNet(nn.Module):
    """ResNet classifier.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: Number of blocks in each of the four stages.
        num_classes: Classifier size.
        groups: Grouped-conv cardinality (ResNeXt).
        width_per_group: Channels per group in bottlenecks (Wide ResNet uses 128).
        stem_width: Channels of the stem and first stage (64 in every published variant).
        deep_stem: Three 3x3 convs instead of the 7x7 one (ResNet-V1c/V1d).
        avg_down: Downsample shortcuts by average pooling and a stride-1 1x1 conv (ResNet-V1d).
        cifar_stem: 3x3 stride-1 stem without max-pool, for small images.
        zero_init_residual: Start each block's last BN at zero so blocks begin as identities (the default, as
            in MMPretrain's ``ResNet`` and timm's ``zero_init_last``; ``False`` gives torchvision's init).
        drop_rate: Dropout before the classifier.

    A fresh model is initialised as MMPretrain's ``ResNet`` (``mmpretrain/models/backbones/resnet.py``) with a
    ``LinearClsHead``: Kaiming-normal convs (fan_out, bias 0), BatchNorm 1/0 (eps 1e-5, momentum 0.1), the last
    BN of every residual block at 0, classifier ~ N(0, 0.01) with bias 0 (see ``docs/defaults.md``).
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: Sequence[int], num_classes: int = 1000, *,
                 groups: int = 1, width_per_group: int = 64, stem_width: int = 64, deep_stem: bool = False,
                 avg_down: bool = False, cifar_stem: bool = False,
                 zero_init_residual: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.groups = groups
        self.base_width = width_per_group
        self.in_ch = stem_width
        self.avg_down = avg_down
        self.conv1: nn.Module
        if deep_stem:
            half = stem_width // 2
            stride = 1 if cifar_stem else 2
            self.conv1 = nn.Sequential(
                _conv3x3(3, half, stride), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
                _conv3x3(half, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True), _conv3x3(half, stem_width),
            )
        elif cifar_stem:
            self.conv1 = nn.Conv2d(3, stem_width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = nn.Identity() if cifar_stem else nn.MaxPool2d(3, stride=2, padding=1)
        widths = [stem_width * 2**i for i in range(len(layers))]
        self.layer1 = self._make_stage(block, widths[0], layers[0], stride=1)
        self.layer2 = self._make_stage(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_stage(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_stage(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.num_features = widths[3] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

        kaiming_convs_and_unit_norms(self)
        normal_head(self.fc)
        if zero_init_residual:
            zero_init_norms(last_residual_norms(self))

    def _make_stage(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        out_ch = planes * block.expansion
        if (stride != 1 or self.in_ch != out_ch) and self.avg_down:
            pool: nn.Module = nn.Identity()
            if stride != 1:
                pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
            downsample = nn.Sequential(pool, nn.Conv2d(self.in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        elif stride != 1 or self.in_ch != out_ch:
            downsample = nn.Sequential(nn.Conv2d(self.in_ch, out_ch, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out_ch))
        stage = [block(self.in_ch, planes, stride, downsample, self.groups, self.base_width)]
        self.in_ch = out_ch
        stage += [block(self.in_ch, planes, groups=self.groups, base_width=self.base_width) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return self.fc(self.dropout(x))


def _imagenet(family: str, params: int, gflops: float, url: str | None, **meta: object) -> dict:
    return dict(family=family, num_params=params, flops=gflops * 1e9, param_source=_TV_SOURCE,
                weights=None if url is None else PretrainedWeights(url=_TV + url, source="torchvision IMAGENET1K_V1",
                                                                   class_names="imagenet-1k"),
                **tv_eval(url), layout=RESNET_LAYOUT, flops_source="torchvision weights metadata (_ops)", **meta)


@register_model(**_imagenet("resnet", 11_689_512, 1.814, "resnet18-f37072fd.pth"))
def resnet18(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-18."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, **kwargs)


@register_model(**_imagenet("resnet", 21_797_672, 3.664, "resnet34-b627a593.pth"))
def resnet34(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-34."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, **kwargs)


@register_model(**_imagenet("resnet", 25_557_032, 4.089, "resnet50-0676ba61.pth"))
def resnet50(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-50."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, **kwargs)


@register_model(**_imagenet("resnet", 44_549_160, 7.801, "resnet101-63fe2227.pth"))
def resnet101(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-101."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, **kwargs)


@register_model(**_imagenet("resnet", 60_192_808, 11.514, "resnet152-394f9c45.pth"))
def resnet152(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-152."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, **kwargs)


@register_model(family="resnet", input_size=(32, 32), num_classes=10, num_params=78_002,
                flops=4_247_168, param_source="clsctl test variant (computed)",
                layout=RESNET_LAYOUT, flops_source="fvcore count (computed)")
def test_resnet(*, num_classes: int = 10, **kwargs: object) -> ResNet:
    """A tiny ResNet (one basic block per stage, 8-channel stem, CIFAR stem) for fast tests."""
    kwargs.setdefault("cifar_stem", True)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes, stem_width=8, **kwargs)


@register_model(**_imagenet("resnet", 25_028_904, 4.23, "resnext50_32x4d-1a0047aa.pth"))
def resnext50_32x4d(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNeXt-50 (32x4d)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, groups=32, width_per_group=4, **kwargs)


@register_model(**_imagenet("resnet", 88_791_336, 16.414, "resnext101_32x8d-110c445d.pth"))
def resnext101_32x8d(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNeXt-101 (32x8d)."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, groups=32, width_per_group=8, **kwargs)


@register_model(**_imagenet("resnet", 83_455_272, 15.46, "resnext101_64x4d-173b62eb.pth"))
def resnext101_64x4d(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNeXt-101 (64x4d)."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, groups=64, width_per_group=4, **kwargs)


@register_model(**_imagenet("resnet", 68_883_240, 11.398, "wide_resnet50_2-9ba9bcbe.pth"))
def wide_resnet50_2(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """Wide ResNet-50-2: bottlenecks twice as wide."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, width_per_group=128, **kwargs)


@register_model(**_imagenet("resnet", 126_886_696, 22.753, "wide_resnet101_2-d733dc28.pth"))
def wide_resnet101_2(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """Wide ResNet-101-2: bottlenecks twice as wide."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, width_per_group=128, **kwargs)


def _bag_of_tricks(params: int, published: str, gflops: float) -> dict:
    # MMPretrain's table rounds to 0.01M; the exact count is ours and is tested against that precision.
    return dict(family="resnet", num_params=params, flops=gflops * 1e9,
                param_source=f"MMPretrain ResNet table ({published}M, rounded)",
                layout=_DEEP_STEM_LAYOUT, paper_params=published)


@register_model(**_bag_of_tricks(25_576_264, "25.58", 4.36))
def resnetv1c50(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-V1c-50: deep 3x3 stem."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, deep_stem=True, **kwargs)


@register_model(**_bag_of_tricks(44_568_392, "44.57", 8.09))
def resnetv1c101(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-V1c-101: deep 3x3 stem."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, deep_stem=True, **kwargs)


@register_model(**_bag_of_tricks(60_212_040, "60.21", 11.82))
def resnetv1c152(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-V1c-152: deep 3x3 stem."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, deep_stem=True, **kwargs)


@register_model(**_bag_of_tricks(25_576_264, "25.58", 4.36))
def resnetv1d50(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-V1d-50: deep 3x3 stem and average-pooled shortcuts."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, deep_stem=True, avg_down=True, **kwargs)


@register_model(**_bag_of_tricks(44_568_392, "44.57", 8.09))
def resnetv1d101(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-V1d-101: deep 3x3 stem and average-pooled shortcuts."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, deep_stem=True, avg_down=True, **kwargs)


@register_model(**_bag_of_tricks(60_212_040, "60.21", 11.82))
def resnetv1d152(*, num_classes: int = 1000, **kwargs: object) -> ResNet:
    """ResNet-V1d-152: deep 3x3 stem and average-pooled shortcuts."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, deep_stem=True, avg_down=True, **kwargs)
