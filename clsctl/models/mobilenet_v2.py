"""MobileNetV2 (Sandler et al., 2018) on torchvision's constructor.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.

torchvision's init equals MMPretrain's ``MobileNetV2`` (``mmpretrain/models/backbones/mobilenet_v2.py``:
Kaiming convs, BatchNorm 1/0 with eps 1e-5 and momentum 0.1, classifier ~ N(0, 0.01)); its config
(``configs/_base_/models/mobilenet_v2_1x.py``) has a plain ``LinearClsHead``, so fresh models here have no
dropout before the classifier (torchvision: 0.2; pass ``dropout`` for it).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import feature_stages, tv_build, tv_meta

# Stem, then one stage per row of the paper's Table 2 (MMPretrain's layer1..layer7); the final 1x1 conv goes
# with the last stage.
_STAGES = feature_stages([0], [1], [2, 3], [4, 5, 6], [7, 8, 9, 10], [11, 12, 13], [14, 15, 16], [17, 18])


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("mobilenet_v2", params, gflops, weights_file, classifier="classifier.1", cam_layer="features", first_conv="features.0.0",
                   input_size=(size, size), weights=weights, stages=_STAGES)


@register_model(**_meta(3_504_872, 0.301, "mobilenet_v2-7ebf99e0.pth", "IMAGENET1K_V2"))
def mobilenet_v2(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MobileNetV2 (width 1.0)."""
    kwargs.setdefault("dropout", 0.0)
    return tv_build("mobilenet_v2", num_classes, **kwargs)
