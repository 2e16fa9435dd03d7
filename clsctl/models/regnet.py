"""RegNetX and RegNetY (Radosavovic et al., 2020), the sizes torchvision has, on its constructors.

The 1.6GF and 3.2GF sizes are registered as ``regnet_x_1.6gf`` etc.: with ``_`` for ``.`` they would read as
the 16GF and 32GF ones once the registry drops separators.

regnet_y_128gf has only SWAG end-to-end fine-tuned weights (at 384x384); its numbers are those weights'.

Built with torchvision's ``RegNet`` and ``BlockParams`` and the design parameters of its constructors, so
parameter names are torchvision's and its checkpoints load as they are. (torchvision's constructors derive
the widths with tensor arithmetic on the default device, which fails under ``torch.device("meta")``; here
that arithmetic runs on the CPU.)

Fresh models start with the last BatchNorm of every residual block at zero (``zero_init_residual=True``), as
MMPretrain's ``RegNet`` (``mmpretrain/models/backbones/regnet.py``, RegNetX) and timm's (``timm/models/regnet.py``,
``zero_init_last``) do; torchvision's init is otherwise kept (it equals theirs: Kaiming-normal fan_out convs,
BatchNorm 1/0, classifier ~ N(0, 0.01)).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._init import zero_init_norms
from clsctl.models._tv import tv_class, tv_meta


def residual_norms(model: nn.Module) -> list[nn.Module]:
    """The last BatchNorm of each residual branch (``f.c``'s norm in torchvision's ``ResBottleneckBlock``)."""
    block = tv_class("regnet.ResBottleneckBlock")
    return [m.f.c[1] for m in model.modules() if isinstance(m, block)]


def _regnet(num_classes: int, *, depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
            se_ratio: float | None = None, zero_init_residual: bool = True, **kwargs: Any) -> nn.Module:
    block_params = tv_class("regnet.BlockParams")
    with torch.device("cpu"):
        params = block_params.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width,
                                               se_ratio=se_ratio)
    kwargs.setdefault("norm_layer", partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))
    model = tv_class("regnet.RegNet")(params, num_classes=num_classes, **kwargs)
    if zero_init_residual:  # MMPretrain's RegNet (a ResNet) and timm's RegNet (zero_init_last) both do
        zero_init_norms(residual_norms(model))
    return model


def _meta(params: int, gflops: float, weights_file: str, weights: str, size: int = 224) -> dict[str, Any]:
    return tv_meta("regnet", params, gflops, weights_file,
                   classifier="fc", pool="avgpool", cam_layer="trunk_output", first_conv="stem.0",
                   input_size=(size, size), weights=weights,
                   stages=[["stem"]] + [[f"trunk_output.block{i}"] for i in range(1, 5)])


@register_model(**_meta(5_495_976, 0.414, "regnet_x_400mf-62229a5f.pth", "IMAGENET1K_V2"))
def regnet_x_400mf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-400MF."""
    return _regnet(num_classes, depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16, **kwargs)


@register_model(**_meta(7_259_656, 0.8, "regnet_x_800mf-94a99ebd.pth", "IMAGENET1K_V2"))
def regnet_x_800mf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-800MF."""
    return _regnet(num_classes, depth=16, w_0=56, w_a=35.73, w_m=2.28, group_width=16, **kwargs)


@register_model(name="regnet_x_1.6gf", **_meta(9_190_136, 1.603, "regnet_x_1_6gf-a12f2b72.pth", "IMAGENET1K_V2"))
def regnet_x_1_6gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-1.6GF."""
    return _regnet(num_classes, depth=18, w_0=80, w_a=34.01, w_m=2.25, group_width=24, **kwargs)


@register_model(name="regnet_x_3.2gf", **_meta(15_296_552, 3.177, "regnet_x_3_2gf-7071aa85.pth", "IMAGENET1K_V2"))
def regnet_x_3_2gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-3.2GF."""
    return _regnet(num_classes, depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48, **kwargs)


@register_model(**_meta(39_572_648, 7.995, "regnet_x_8gf-2b70d774.pth", "IMAGENET1K_V2"))
def regnet_x_8gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-8GF."""
    return _regnet(num_classes, depth=23, w_0=80, w_a=49.56, w_m=2.88, group_width=120, **kwargs)


@register_model(**_meta(54_278_536, 15.941, "regnet_x_16gf-ba3796d7.pth", "IMAGENET1K_V2"))
def regnet_x_16gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-16GF."""
    return _regnet(num_classes, depth=22, w_0=216, w_a=55.59, w_m=2.1, group_width=128, **kwargs)


@register_model(**_meta(107_811_560, 31.736, "regnet_x_32gf-6eb8fdc6.pth", "IMAGENET1K_V2"))
def regnet_x_32gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetX-32GF."""
    return _regnet(num_classes, depth=23, w_0=320, w_a=69.86, w_m=2.0, group_width=168, **kwargs)


@register_model(**_meta(4_344_144, 0.402, "regnet_y_400mf-e6988f5f.pth", "IMAGENET1K_V2"))
def regnet_y_400mf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-400MF."""
    return _regnet(num_classes, depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25, **kwargs)


@register_model(**_meta(6_432_512, 0.834, "regnet_y_800mf-58fc7688.pth", "IMAGENET1K_V2"))
def regnet_y_800mf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-800MF."""
    return _regnet(num_classes, depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16, se_ratio=0.25, **kwargs)


@register_model(name="regnet_y_1.6gf", **_meta(11_202_430, 1.612, "regnet_y_1_6gf-0d7bc02a.pth", "IMAGENET1K_V2"))
def regnet_y_1_6gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-1.6GF."""
    return _regnet(num_classes, depth=27, w_0=48, w_a=20.71, w_m=2.65, group_width=24, se_ratio=0.25, **kwargs)


@register_model(name="regnet_y_3.2gf", **_meta(19_436_338, 3.176, "regnet_y_3_2gf-9180c971.pth", "IMAGENET1K_V2"))
def regnet_y_3_2gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-3.2GF."""
    return _regnet(num_classes, depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24, se_ratio=0.25, **kwargs)


@register_model(**_meta(39_381_472, 8.473, "regnet_y_8gf-dc2b1b54.pth", "IMAGENET1K_V2"))
def regnet_y_8gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-8GF."""
    return _regnet(num_classes, depth=17, w_0=192, w_a=76.82, w_m=2.19, group_width=56, se_ratio=0.25, **kwargs)


@register_model(**_meta(83_590_140, 15.912, "regnet_y_16gf-3e4a00f9.pth", "IMAGENET1K_V2"))
def regnet_y_16gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-16GF."""
    return _regnet(num_classes, depth=18, w_0=200, w_a=106.23, w_m=2.48, group_width=112, se_ratio=0.25, **kwargs)


@register_model(**_meta(145_046_770, 32.28, "regnet_y_32gf-8db6d4b5.pth", "IMAGENET1K_V2"))
def regnet_y_32gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-32GF."""
    return _regnet(num_classes, depth=20, w_0=232, w_a=115.89, w_m=2.53, group_width=232, se_ratio=0.25, **kwargs)


@register_model(**_meta(644_812_894, 374.57, "regnet_y_128gf_swag-c8ce3e52.pth", "IMAGENET1K_SWAG_E2E_V1", 384))
def regnet_y_128gf(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """RegNetY-128GF."""
    return _regnet(num_classes, depth=27, w_0=456, w_a=160.83, w_m=2.52, group_width=264, se_ratio=0.25, **kwargs)
