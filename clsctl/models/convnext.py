"""ConvNeXt (Liu et al., 2022) on torchvision's constructors: tiny, small, base and large.

Built with ``torchvision.models.convnext_*``, so parameter names are torchvision's and its checkpoints load
as they are. Options are torchvision's (``stochastic_depth_prob``, ``layer_scale``).

torchvision's defaults equal MMPretrain's model configs (``configs/_base_/models/convnext/convnext-*.py``):
drop-path 0.1 / 0.4 / 0.5 / 0.5 for T / S / B / L, layer scale 1e-6, LayerNorm eps 1e-6, convs and block
linears ~ TruncNormal(0.02). Only the classifier differs: MMPretrain's ``LinearClsHead`` starts at N(0, 0.01)
(torchvision: TruncNormal(0.02)), which fresh models here use.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._init import normal_head
from clsctl.models._tv import feature_stages, tv_build, tv_meta


def _build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    model = tv_build(constructor, num_classes, **kwargs)
    normal_head(model.classifier[2])
    return model


def _meta(params: int, gflops: float, weights_file: str) -> dict[str, Any]:
    return tv_meta("convnext", params, gflops, weights_file, classifier="classifier.2", pool="avgpool", first_conv="features.0.0",
                   cam_layer="features.7",
                   stages=feature_stages([0], [1], [2, 3], [4, 5], [6, 7]))


@register_model(**_meta(28_589_128, 4.456, "convnext_tiny-983f1562.pth"))
def convnext_tiny(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-T."""
    return _build("convnext_tiny", num_classes, **kwargs)


@register_model(**_meta(50_223_688, 8.684, "convnext_small-0c510722.pth"))
def convnext_small(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-S."""
    return _build("convnext_small", num_classes, **kwargs)


@register_model(**_meta(88_591_464, 15.355, "convnext_base-6075fbad.pth"))
def convnext_base(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-B."""
    return _build("convnext_base", num_classes, **kwargs)


@register_model(**_meta(197_767_336, 34.361, "convnext_large-ea097f82.pth"))
def convnext_large(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-L."""
    return _build("convnext_large", num_classes, **kwargs)
