"""VGG (Simonyan & Zisserman, 2015) 11/13/16/19, with and without BatchNorm, on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import tv_build, tv_meta


# Convs per block in torchvision's configurations A (VGG-11), B (13), D (16) and E (19).
_BLOCKS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def _stages(depth: int, batch_norm: bool) -> list[list[str]]:
    """No stem (as in MMPretrain's VGG, ``frozen_stages=0`` freezes nothing), then the five conv blocks.

    A block lists its convs (and BatchNorms); ``features`` holds conv, (BN,) ReLU per conv and a max-pool per block.
    """
    stages: list[list[str]] = [[]]
    index = 0
    for convs in _BLOCKS[depth]:
        block = []
        for _ in range(convs):
            block += [f"features.{index}"] + ([f"features.{index + 1}"] if batch_norm else [])
            index += 3 if batch_norm else 2
        stages.append(block)
        index += 1  # the max-pool
    return stages


def _meta(params: int, gflops: float, weights_file: str, weights: str, depth: int, batch_norm: bool = False,
          size: int = 224) -> dict[str, Any]:
    return tv_meta("vgg", params, gflops, weights_file, classifier="classifier.6", cam_layer="features", first_conv="features.0",
                   input_size=(size, size), weights=weights, stages=_stages(depth, batch_norm))


@register_model(**_meta(132_863_336, 7.609, "vgg11-8a719046.pth", "IMAGENET1K_V1", 11))
def vgg11(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-11."""
    return tv_build("vgg11", num_classes, **kwargs)


@register_model(**_meta(132_868_840, 7.609, "vgg11_bn-6002323d.pth", "IMAGENET1K_V1", 11, batch_norm=True))
def vgg11_bn(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-11 with BatchNorm."""
    return tv_build("vgg11_bn", num_classes, **kwargs)


@register_model(**_meta(133_047_848, 11.308, "vgg13-19584684.pth", "IMAGENET1K_V1", 13))
def vgg13(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-13."""
    return tv_build("vgg13", num_classes, **kwargs)


@register_model(**_meta(133_053_736, 11.308, "vgg13_bn-abd245e5.pth", "IMAGENET1K_V1", 13, batch_norm=True))
def vgg13_bn(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-13 with BatchNorm."""
    return tv_build("vgg13_bn", num_classes, **kwargs)


@register_model(**_meta(138_357_544, 15.47, "vgg16-397923af.pth", "IMAGENET1K_V1", 16))
def vgg16(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-16."""
    return tv_build("vgg16", num_classes, **kwargs)


@register_model(**_meta(138_365_992, 15.47, "vgg16_bn-6c64b313.pth", "IMAGENET1K_V1", 16, batch_norm=True))
def vgg16_bn(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-16 with BatchNorm."""
    return tv_build("vgg16_bn", num_classes, **kwargs)


@register_model(**_meta(143_667_240, 19.632, "vgg19-dcbb9e9d.pth", "IMAGENET1K_V1", 19))
def vgg19(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-19."""
    return tv_build("vgg19", num_classes, **kwargs)


@register_model(**_meta(143_678_248, 19.632, "vgg19_bn-c79401a0.pth", "IMAGENET1K_V1", 19, batch_norm=True))
def vgg19_bn(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """VGG-19 with BatchNorm."""
    return tv_build("vgg19_bn", num_classes, **kwargs)
