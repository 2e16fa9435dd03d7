"""DenseNet (Huang et al., 2017) 121/161/169/201 on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.

The classifier of a fresh model starts as MMPretrain's ``LinearClsHead`` (``configs/_base_/models/densenet/``),
~ N(0, 0.01) with bias 0; the rest is torchvision's init (MMPretrain's ``DenseNet`` sets none of its own).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._init import normal_head
from clsctl.models._tv import tv_build, tv_meta

# Stem (conv0, norm0), then each dense block with the transition after it; the final norm goes with block 4.
_STAGES = [["features.conv0", "features.norm0"]]
_STAGES += [[f"features.denseblock{i}", f"features.transition{i}"] for i in range(1, 4)]
_STAGES += [["features.denseblock4", "features.norm5"]]


def _build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    model = tv_build(constructor, num_classes, **kwargs)
    normal_head(model.classifier)
    return model


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("densenet", params, gflops, weights_file, classifier="classifier", cam_layer="features", first_conv="features.conv0",
                   input_size=(size, size), weights=weights, stages=_STAGES)


@register_model(**_meta(7_978_856, 2.834, "densenet121-a639ec97.pth", "IMAGENET1K_V1"))
def densenet121(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DenseNet-121."""
    return _build("densenet121", num_classes, **kwargs)


@register_model(**_meta(28_681_000, 7.728, "densenet161-8d451a50.pth", "IMAGENET1K_V1"))
def densenet161(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DenseNet-161."""
    return _build("densenet161", num_classes, **kwargs)


@register_model(**_meta(14_149_480, 3.36, "densenet169-b2777c0a.pth", "IMAGENET1K_V1"))
def densenet169(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DenseNet-169."""
    return _build("densenet169", num_classes, **kwargs)


@register_model(**_meta(20_013_928, 4.291, "densenet201-c1103571.pth", "IMAGENET1K_V1"))
def densenet201(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DenseNet-201."""
    return _build("densenet201", num_classes, **kwargs)
