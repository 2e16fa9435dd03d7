"""ConvNeXt (Liu et al., 2022) on torchvision's constructors: tiny, small, base and large.

Built with ``torchvision.models.convnext_*``, so parameter names are torchvision's and its checkpoints load
as they are. Options are torchvision's (``stochastic_depth_prob``, ``layer_scale``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import feature_stages, tv_build, tv_meta


def _meta(params: int, gflops: float, weights_file: str) -> dict[str, Any]:
    return tv_meta("convnext", params, gflops, weights_file, classifier="classifier.2", pool="avgpool",
                   cam_layer="features.7",
                   stages=feature_stages([0], [1], [2, 3], [4, 5], [6, 7]))


@register_model(**_meta(28_589_128, 4.456, "convnext_tiny-983f1562.pth"))
def convnext_tiny(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-T."""
    return tv_build("convnext_tiny", num_classes, **kwargs)


@register_model(**_meta(50_223_688, 8.684, "convnext_small-0c510722.pth"))
def convnext_small(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-S."""
    return tv_build("convnext_small", num_classes, **kwargs)


@register_model(**_meta(88_591_464, 15.355, "convnext_base-6075fbad.pth"))
def convnext_base(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-B."""
    return tv_build("convnext_base", num_classes, **kwargs)


@register_model(**_meta(197_767_336, 34.361, "convnext_large-ea097f82.pth"))
def convnext_large(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ConvNeXt-L."""
    return tv_build("convnext_large", num_classes, **kwargs)
