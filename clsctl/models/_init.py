"""Initialisation of fresh models as the reference implementations do it (see ``docs/defaults.md``).

Each family applies these in its builder, after the layers exist, so they only shape a model trained from
scratch: loading torchvision, timm or clsctl weights afterwards overwrites every parameter and buffer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import nn

# Every BatchNorm torch.nn has (their private common base, ``nn.modules.batchnorm._BatchNorm``, is not API).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

# MMPretrain's LinearClsHead default: ``init_cfg=dict(type='Normal', layer='Linear', std=0.01)``.
HEAD_STD = 0.01


def normal_head(linear: nn.Linear, std: float = HEAD_STD) -> None:
    """Weights ~ N(0, std), bias 0 (MMPretrain's ``LinearClsHead`` / ``StackedLinearClsHead``)."""
    nn.init.normal_(linear.weight, 0.0, std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def zeros_head(linear: nn.Linear) -> None:
    """Weights and bias 0 (MMPretrain's ``VisionTransformerClsHead``)."""
    nn.init.zeros_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def kaiming_convs_and_unit_norms(model: nn.Module) -> None:
    """MMPretrain's default backbone ``init_cfg``: ``Kaiming`` on Conv2d (normal, fan_out, relu, bias 0) and
    ``Constant`` 1 on BatchNorm/GroupNorm (bias 0)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (*BATCH_NORMS, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def zero_init_norms(norms: Iterable[nn.Module]) -> None:
    """Set the scale (gamma) of each norm layer to 0: the last norm of a residual branch, so every block
    starts as the identity (Goyal et al., 2017; MMPretrain's ``zero_init_residual``, timm's ``zero_init_last``)."""
    for norm in norms:
        nn.init.zeros_(norm.weight)


def shufflenet_init(model: nn.Module) -> None:
    """MMPretrain's ``ShuffleNetV1/V2.init_weights``: convs whose name contains ``conv1`` (the stem)
    ~ N(0, 0.01), the others ~ N(0, 1 / fan-in channels); norms weight 1, bias 1e-4, running mean 0."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            std = 0.01 if "conv1" in name else 1.0 / module.weight.shape[1]
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (*BATCH_NORMS, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.constant_(module.bias, 1e-4)
            if getattr(module, "running_mean", None) is not None:
                nn.init.zeros_(module.running_mean)


def set_batchnorm(model: nn.Module, *, eps: float | None = None, momentum: float | None = None) -> None:
    """Set ``eps`` and/or ``momentum`` of every BatchNorm layer (hyperparameters, not weights)."""
    for module in model.modules():
        if isinstance(module, BATCH_NORMS):
            if eps is not None:
                module.eps = eps
            if momentum is not None:
                module.momentum = momentum


def goog_init(model: nn.Module) -> None:
    """timm's ``_init_weight_goog`` (the TensorFlow MnasNet/EfficientNet init): convs ~ N(0, sqrt(2 / fan_out))
    with fan_out = k * k * out_channels / groups, BatchNorm 1/0, linears ~ U(-r, r) with r = 1 / sqrt(out)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)
