"""Vision Transformer (Dosovitskiy et al., 2021) and DeiT (Touvron et al., 2021) on torchvision's ViT.

ViT-B/16, B/32 and L/16 are torchvision's constructors; DeiT tiny/small/base are torchvision's
``VisionTransformer`` with DeiT's widths (192/3 heads, 384/6, 768/12; 12 layers, patch 16, MLP 4x), so all of
them share torchvision's parameter names. ``image_size`` may be passed to build for another input size (the
position embedding is sized for it). ``test_vit`` is a tiny variant for tests.

Every variant also takes ``drop_path_rate``: stochastic depth on both residual branches of each encoder
layer, rising linearly from 0 at the first layer to the rate at the last (MMPretrain's ``VisionTransformer``,
``mmpretrain/models/backbones/vision_transformer.py``); torchvision's ViT has none. Fresh-model defaults
follow MMPretrain's configs: ViT-B/L (``configs/_base_/models/vit-base-p16.py``) use dropout 0.1; DeiT
(``configs/deit/deit-*_in1k.py``) drop-path 0.1 for DeiT-B and none for DeiT-S/T (those configs remove it),
every linear layer (attention and MLP) ~ TruncNormal(0.02) with bias 0, and all use a zero-initialised
classifier (``VisionTransformerClsHead``), which torchvision's init already has.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import LayerGroups, ModelLayout
from clsctl.models._init import zeros_head
from clsctl.models._tv import tv_build, tv_class, tv_meta


def add_drop_path(model: nn.Module, rate: float) -> None:
    """Stochastic depth on the attention and MLP branches of each encoder layer, ``rate * i / (layers - 1)``
    at layer ``i``. The modules hold no parameters, so the state dict (and checkpoint loading) is unchanged."""
    from torchvision.ops import StochasticDepth

    layers = list(model.encoder.layers)
    for index, layer in enumerate(layers):
        layer_rate = rate * index / max(len(layers) - 1, 1)
        if layer_rate <= 0:
            continue
        # torchvision's block adds its ``dropout`` output (the attention branch) and its ``mlp`` output to the
        # input, so dropping whole samples after each is drop-path on each branch.
        layer.dropout = nn.Sequential(layer.dropout, StochasticDepth(layer_rate, "row"))
        layer.mlp.append(StochasticDepth(layer_rate, "row"))


def deit_init(model: nn.Module) -> None:
    """MMPretrain's DeiT ``init_cfg``: every linear layer, including the attention's input projection,
    ~ TruncNormal(0.02) with bias 0; LayerNorms 1/0; the classifier at zero."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.trunc_normal_(module.in_proj_weight, std=0.02)
            nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    zeros_head(model.heads.head)


# Layer-wise lr decay: class token, patch projection and position embedding, then one layer per encoder layer.
_LAYER_GROUPS = LayerGroups(blocks=r"^encoder\.layers\.encoder_layer_(\d+)\.",
                            embed=r"^(?:class_token$|conv_proj\.|encoder\.pos_embedding$)")


def _layout(num_layers: int) -> ModelLayout:
    # Grad-CAM on ViTs targets the input norm of the last block: its output still has one token per patch.
    return ModelLayout(classifier="heads.head", stages=_stages(num_layers), first_conv="conv_proj",
                       cam_layer=f"encoder.layers.encoder_layer_{num_layers - 1}.ln_1", cam_reshape="vit",
                       layer_groups=_LAYER_GROUPS)


def _stages(num_layers: int) -> list[list[str]]:
    # Stem: patch projection, class token and position embedding; one stage per encoder layer, the final norm
    # with the last (MMPretrain's ViT freezes it when every layer is frozen).
    stages = [["conv_proj", "class_token", "encoder.pos_embedding"]]
    stages += [[f"encoder.layers.encoder_layer_{i}"] for i in range(num_layers)]
    stages[-1].append("encoder.ln")
    return stages


def _meta(params: int, gflops: float, weights_file: str, num_layers: int) -> dict[str, Any]:
    layout = _layout(num_layers)
    return tv_meta("vit", params, gflops, weights_file, classifier=layout.classifier, stages=layout.stages,
                   cam_layer=layout.cam_layer, cam_reshape=layout.cam_reshape, first_conv=layout.first_conv,
                   layer_groups=layout.layer_groups)


def _vit(num_classes: int, *, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int,
         image_size: int = 224, drop_path_rate: float = 0.0, **kwargs: Any) -> nn.Module:
    cls = tv_class("vision_transformer.VisionTransformer")
    model = cls(image_size=image_size, patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                hidden_dim=hidden_dim, mlp_dim=mlp_dim, num_classes=num_classes, **kwargs)
    add_drop_path(model, drop_path_rate)
    return model


def _tv_vit(constructor: str, num_classes: int, drop_path_rate: float = 0.0, **kwargs: Any) -> nn.Module:
    kwargs.setdefault("dropout", 0.1)  # MMPretrain's vit-base-p16 / vit-large-p16 configs: drop_rate=0.1
    model = tv_build(constructor, num_classes, **kwargs)
    add_drop_path(model, drop_path_rate)
    return model


def _deit(num_classes: int, drop_path_rate: float, **kwargs: Any) -> nn.Module:
    model = _vit(num_classes, patch_size=16, num_layers=12, mlp_dim=4 * kwargs["hidden_dim"],
                 drop_path_rate=drop_path_rate, **kwargs)
    deit_init(model)
    return model


@register_model(**_meta(86_567_656, 17.564, "vit_b_16-c867db91.pth", 12))
def vit_b_16(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ViT-B/16."""
    return _tv_vit("vit_b_16", num_classes, **kwargs)


@register_model(**_meta(88_224_232, 4.409, "vit_b_32-d86f8d99.pth", 12))
def vit_b_32(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ViT-B/32."""
    return _tv_vit("vit_b_32", num_classes, **kwargs)


@register_model(**_meta(304_326_632, 61.555, "vit_l_16-852ce7e3.pth", 24))
def vit_l_16(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """ViT-L/16."""
    return _tv_vit("vit_l_16", num_classes, **kwargs)


_DEIT_SOURCE = "DeiT paper Table 1 ({}); exact count of facebookresearch/deit's model"


def _deit_meta(params: int, paper: str, gflops: float) -> dict[str, Any]:
    # FLOPs as torchvision counts ViTs (fvcore's MACs plus the attention matmuls, which fvcore skips).
    return dict(family="deit", num_params=params, flops=gflops * 1e9, param_source=_DEIT_SOURCE.format(paper),
                layout=_layout(12), paper_params=paper)


@register_model(**_deit_meta(5_717_416, "5M", 1.258))
def deit_tiny(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DeiT-Ti: 12 layers, width 192, 3 heads."""
    kwargs.setdefault("drop_path_rate", 0.0)
    return _deit(num_classes, num_heads=3, hidden_dim=192, **kwargs)


@register_model(**_deit_meta(22_050_664, "22M", 4.608))
def deit_small(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DeiT-S: 12 layers, width 384, 6 heads."""
    kwargs.setdefault("drop_path_rate", 0.0)
    return _deit(num_classes, num_heads=6, hidden_dim=384, **kwargs)


@register_model(**_deit_meta(86_567_656, "86M", 17.564))
def deit_base(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """DeiT-B: 12 layers, width 768, 12 heads (ViT-B/16's architecture)."""
    kwargs.setdefault("drop_path_rate", 0.1)
    return _deit(num_classes, num_heads=12, hidden_dim=768, **kwargs)


@register_model(family="vit", input_size=(32, 32), num_classes=10, num_params=24_234, flops=427_744,
                param_source="clsctl test variant (computed)",
                layout=_layout(2), flops_source="fvcore count (computed)")
def test_vit(*, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """A tiny ViT for tests: 32x32 input, patch 8, 2 layers, width 32, 2 heads, MLP 64."""
    kwargs.setdefault("image_size", 32)
    return _vit(num_classes, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, **kwargs)
