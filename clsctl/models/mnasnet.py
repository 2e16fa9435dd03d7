"""MnasNet (Tan et al., 2019) at depth multipliers 0.5, 0.75, 1.0 and 1.3 on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import feature_stages, tv_build, tv_meta

# Stem (first conv and the separable conv, ``layers.0``-``layers.7``), the six inverted-residual stacks; the
# final 1x1 conv and its BN go with the last stack.
_STAGES = feature_stages(range(8), [8], [9], [10], [11], [12], [13, 14, 15], prefix="layers")


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("mnasnet", params, gflops, weights_file, classifier="classifier.1", cam_layer="layers",
                   input_size=(size, size), weights=weights, stages=_STAGES)


@register_model(**_meta(2_218_512, 0.104, "mnasnet0.5_top1_67.823-3ffadce67e.pth", "IMAGENET1K_V1"))
def mnasnet0_5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 0.5."""
    return tv_build("mnasnet0_5", num_classes, **kwargs)


@register_model(**_meta(3_170_208, 0.215, "mnasnet0_75-7090bc5f.pth", "IMAGENET1K_V1"))
def mnasnet0_75(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 0.75."""
    return tv_build("mnasnet0_75", num_classes, **kwargs)


@register_model(**_meta(4_383_312, 0.314, "mnasnet1.0_top1_73.512-f206786ef8.pth", "IMAGENET1K_V1"))
def mnasnet1_0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 1.0."""
    return tv_build("mnasnet1_0", num_classes, **kwargs)


@register_model(**_meta(6_282_256, 0.526, "mnasnet1_3-a4c69d6f.pth", "IMAGENET1K_V1"))
def mnasnet1_3(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 1.3."""
    return tv_build("mnasnet1_3", num_classes, **kwargs)
