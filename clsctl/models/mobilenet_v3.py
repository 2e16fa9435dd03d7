"""MobileNetV3 (Howard et al., 2019) small and large on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import feature_stages, tv_build, tv_meta


def _meta(params: int, gflops: float, weights_file: str, weights: str, blocks: int,
          size: int = 224) -> dict[str, Any]:
    # Stem, then one stage per inverted-residual block as MMPretrain's MobileNetV3 counts them (11 in small,
    # 15 in large); the final 1x1 conv goes with the last.
    stages = feature_stages([0], *([i] for i in range(1, blocks)), [blocks, blocks + 1])
    return tv_meta("mobilenet_v3", params, gflops, weights_file,
                   classifier="classifier.3", pool="avgpool", cam_layer="features", first_conv="features.0.0",
                   input_size=(size, size), weights=weights, stages=stages)


@register_model(**_meta(2_542_856, 0.057, "mobilenet_v3_small-047dcff4.pth", "IMAGENET1K_V1", 11))
def mobilenet_v3_small(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MobileNetV3-Small."""
    return tv_build("mobilenet_v3_small", num_classes, **kwargs)


@register_model(**_meta(5_483_032, 0.217, "mobilenet_v3_large-5c1a4163.pth", "IMAGENET1K_V2", 15))
def mobilenet_v3_large(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MobileNetV3-Large."""
    return tv_build("mobilenet_v3_large", num_classes, **kwargs)
