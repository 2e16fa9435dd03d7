"""Swin Transformer (Liu et al., 2021) and Swin V2 (Liu et al., 2022) on torchvision's constructors.

tiny/small/base of both versions use torchvision's constructors and parameter names; ``test_swin`` is a tiny
two-stage variant for tests. The features before pooling are NHWC, hence ``cam_reshape: swin``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import ModelLayout
from clsctl.models._tv import feature_stages, tv_build, tv_class, tv_meta

_PLACES = {"cam_layer": "norm", "cam_reshape": "swin", "pool": "avgpool", "first_conv": "features.0.0"}
# Patch embedding, then each stage with the patch merging before it; the final norm goes with the last stage.
_STAGES = feature_stages([0], [1], [2, 3], [4, 5], [6, 7])
_STAGES[-1].append("norm")
_TEST_STAGES = feature_stages([0], [1], [2, 3])
_TEST_STAGES[-1].append("norm")


def _meta(family: str, params: int, gflops: float, weights_file: str, size: int = 224) -> dict[str, Any]:
    return tv_meta(family, params, gflops, weights_file, classifier="head", input_size=(size, size), stages=_STAGES,
                   **_PLACES)


@register_model(**_meta("swin", 28_288_354, 4.491, "swin_t-704ceda3.pth"))
def swin_tiny(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Swin-T."""
    return tv_build("swin_t", num_classes, **kwargs)


@register_model(**_meta("swin", 49_606_258, 8.741, "swin_s-5e29d889.pth"))
def swin_small(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Swin-S."""
    return tv_build("swin_s", num_classes, **kwargs)


@register_model(**_meta("swin", 87_768_224, 15.431, "swin_b-68c6b09e.pth"))
def swin_base(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Swin-B."""
    return tv_build("swin_b", num_classes, **kwargs)


@register_model(**_meta("swin_v2", 28_351_570, 5.94, "swin_v2_t-b137f0e2.pth", 256))
def swin_v2_tiny(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Swin V2-T (window 8, 256x256)."""
    return tv_build("swin_v2_t", num_classes, **kwargs)


@register_model(**_meta("swin_v2", 49_737_442, 11.546, "swin_v2_s-637d8ceb.pth", 256))
def swin_v2_small(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Swin V2-S (window 8, 256x256)."""
    return tv_build("swin_v2_s", num_classes, **kwargs)


@register_model(**_meta("swin_v2", 87_930_848, 20.325, "swin_v2_b-781e5279.pth", 256))
def swin_v2_base(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Swin V2-B (window 8, 256x256)."""
    return tv_build("swin_v2_b", num_classes, **kwargs)


@register_model(family="swin", input_size=(32, 32), num_classes=10, num_params=19_517, flops=553_280,
                param_source="clsctl test variant (computed)",
                layout=ModelLayout(classifier="head", stages=_TEST_STAGES, **_PLACES),
                flops_source="fvcore count (computed)")
def test_swin(*, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """A tiny Swin for tests: patch 4, width 16, two stages of one block, heads 1 and 2, window 4."""
    cls = tv_class("swin_transformer.SwinTransformer")
    kwargs.setdefault("stochastic_depth_prob", 0.0)
    return cls(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=[4, 4],
               num_classes=num_classes, **kwargs)
