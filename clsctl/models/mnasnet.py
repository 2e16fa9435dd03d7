"""MnasNet (Tan et al., 2019) at depth multipliers 0.5, 0.75, 1.0 and 1.3 on torchvision's constructors.

Built with ``torchvision.models``, so parameter names are torchvision's and its checkpoints load as they are;
keyword arguments go to the torchvision constructor.

MMPretrain has no MnasNet, so fresh models follow timm's (``timm/models/efficientnet.py``, ``mnasnet_*``):
BatchNorm momentum 0.1 and eps 1e-5 (torchvision: momentum 0.0003, the TensorFlow value), no dropout before the
classifier (torchvision: 0.2), and timm's ``_init_weight_goog`` (``timm/models/_efficientnet_builder.py``):
convs ~ N(0, sqrt(2 / fan_out)) with fan_out per group, BatchNorm 1/0, classifier ~ U(+-1/sqrt(classes)).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import LayerGroups
from clsctl.models._init import goog_init, set_batchnorm
from clsctl.models._tv import feature_stages, tv_build, tv_meta

# Stem (first conv and the separable conv, ``layers.0``-``layers.7``), the six inverted-residual stacks; the
# final 1x1 conv and its BN go with the last stack.
_STAGES = feature_stages(range(8), [8], [9], [10], [11], [12], [13, 14, 15], prefix="layers")


# Layer-wise lr decay: each child of ``layers`` is one block (classifier last, no embedding layer).
_LAYER_GROUPS = LayerGroups(blocks=r"^layers\.(\d+)\.")


def _build(constructor: str, num_classes: int, **kwargs: Any) -> nn.Module:
    kwargs.setdefault("dropout", 0.0)
    model = tv_build(constructor, num_classes, **kwargs)
    set_batchnorm(model, eps=1e-5, momentum=0.1)
    goog_init(model)
    return model


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("mnasnet", params, gflops, weights_file, classifier="classifier.1", cam_layer="layers", first_conv="layers.0",
                   input_size=(size, size), weights=weights, stages=_STAGES, layer_groups=_LAYER_GROUPS)


@register_model(**_meta(2_218_512, 0.104, "mnasnet0.5_top1_67.823-3ffadce67e.pth", "IMAGENET1K_V1"))
def mnasnet0_5(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 0.5."""
    return _build("mnasnet0_5", num_classes, **kwargs)


@register_model(**_meta(3_170_208, 0.215, "mnasnet0_75-7090bc5f.pth", "IMAGENET1K_V1"))
def mnasnet0_75(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 0.75."""
    return _build("mnasnet0_75", num_classes, **kwargs)


@register_model(**_meta(4_383_312, 0.314, "mnasnet1.0_top1_73.512-f206786ef8.pth", "IMAGENET1K_V1"))
def mnasnet1_0(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 1.0."""
    return _build("mnasnet1_0", num_classes, **kwargs)


@register_model(**_meta(6_282_256, 0.526, "mnasnet1_3-a4c69d6f.pth", "IMAGENET1K_V1"))
def mnasnet1_3(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """MnasNet-A1 at depth multiplier 1.3."""
    return _build("mnasnet1_3", num_classes, **kwargs)
