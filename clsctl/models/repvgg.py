"""RepVGG (Ding et al., 2021): a VGG-style plain net whose 3x3 blocks train with 1x1 and identity branches.

Training form: each block is ``relu(bn(conv3x3(x)) + bn(conv1x1(x)) + bn(x))``; :meth:`RepVGG.reparameterize`
folds the branches and their BatchNorms into one biased 3x3 conv per block (the deploy form), which computes
the same function in eval mode. Module names follow the official implementation (``stage0``..``stage4``,
``rbr_dense``, ``rbr_1x1``, ``rbr_identity``, ``rbr_reparam``, ``linear``), so its checkpoints load.
Parameter counts: the paper's Table 2 and the official repository (training / deploy, in millions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._fuse import ConvBN, deploy_conv, fuse_bn, identity_kernel
from clsctl.models._meta import ModelLayout
from clsctl.models._init import kaiming_convs_and_unit_norms, normal_head


class RepVGGBlock(nn.Module):
    """3x3 conv + 1x1 conv + identity (when shapes allow), each with BatchNorm, then ReLU.

    Args:
        in_ch: Input channels.
        out_ch: Output channels.
        stride: Stride of the block.
        groups: Groups of the 3x3 and 1x1 convs.
        deploy: Build the single-conv deploy form directly (to load deploy checkpoints).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, deploy: bool = False) -> None:
        super().__init__()
        self.nonlinearity = nn.ReLU()
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_ch, out_ch, 3, stride, 1, groups=groups, bias=True)
            return
        self.rbr_identity = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.rbr_dense = ConvBN(in_ch, out_ch, 3, stride, groups)
        self.rbr_1x1 = ConvBN(in_ch, out_ch, 1, stride, groups)

    @property
    def deployed(self) -> bool:
        """Whether the block is in its single-conv deploy form."""
        return hasattr(self, "rbr_reparam")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.nonlinearity(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches into ``rbr_reparam`` (uses the BatchNorm running statistics); idempotent."""
        if self.deployed:
            return
        template = self.rbr_dense.conv
        kernel, bias = self.rbr_dense.fused(3)
        kernel_1x1, bias_1x1 = self.rbr_1x1.fused(3)
        kernel, bias = kernel + kernel_1x1, bias + bias_1x1
        if self.rbr_identity is not None:
            eye = identity_kernel(template.in_channels, template.groups, 3, kernel)
            kernel_id, bias_id = fuse_bn(eye, self.rbr_identity)
            kernel, bias = kernel + kernel_id, bias + bias_id
        self.rbr_reparam = deploy_conv(template, kernel, bias)
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity


class RepVGG(nn.Module):
    """RepVGG classifier.

    Args:
        num_blocks: Blocks in stages 1-4 (stage 0 is one block).
        widths: Multipliers ``(a, b)``: stages 1-3 have ``64a, 128a, 256a`` channels, stage 4 ``512b``.
        num_classes: Classifier size.
        group_layers: Indices (1-based, counted over the blocks of stages 1-4) of blocks with grouped convs.
        groups: Groups used at ``group_layers``.
        base_width: 64 in every published variant; tests use smaller.
        deploy: Build the deploy form directly.
    """

    def __init__(self, num_blocks: Sequence[int], widths: tuple[float, float], num_classes: int = 1000, *,
                 group_layers: Sequence[int] = (), groups: int = 1, base_width: int = 64,
                 deploy: bool = False) -> None:
        super().__init__()
        a, b = widths
        self.in_ch = min(base_width, int(base_width * a))
        self._deploy = deploy
        self._groups = {layer: groups for layer in group_layers}
        self._layer = 1
        self.stage0 = RepVGGBlock(3, self.in_ch, stride=2, deploy=deploy)
        stage_widths = [int(base_width * a), int(2 * base_width * a), int(4 * base_width * a), int(8 * base_width * b)]
        self.stage1, self.stage2, self.stage3, self.stage4 = (
            self._make_stage(w, n) for w, n in zip(stage_widths, num_blocks)
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.num_features = stage_widths[-1]
        self.linear = nn.Linear(self.num_features, num_classes)
        kaiming_convs_and_unit_norms(self)  # MMPretrain's init_cfg: Kaiming convs, BatchNorm 1/0
        normal_head(self.linear)  # its LinearClsHead: N(0, 0.01), bias 0

    def _make_stage(self, width: int, blocks: int) -> nn.Sequential:
        stage = []
        for stride in [2] + [1] * (blocks - 1):
            groups = self._groups.get(self._layer, 1)
            stage.append(RepVGGBlock(self.in_ch, width, stride, groups, deploy=self._deploy))
            self.in_ch = width
            self._layer += 1
        return nn.Sequential(*stage)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage."""
        return self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.gap(self.forward_features(x)), 1))

    def reparameterize(self) -> RepVGG:
        """Fold every block into its deploy form, in place; returns the model."""
        for module in self.modules():
            if isinstance(module, RepVGGBlock):
                module.reparameterize()
        return self


_A = (2, 4, 14, 1)
_B = (4, 6, 16, 1)
_G2 = tuple(range(2, 27, 2))  # the official "optional groupwise layers": every other block
_SOURCE = "MMPretrain RepVGG table / official repo (train {}M, deploy {}M, rounded)"


_STAGES = [["stage0"], ["stage1"], ["stage2"], ["stage3"], ["stage4"]]
# first_conv is that of the training form (the deploy form has one conv per block: stage0.rbr_reparam).
_LAYOUT = ModelLayout(classifier="linear", pool="gap", cam_layer="stage4", stages=_STAGES,
                      first_conv="stage0.rbr_dense.conv")


def _meta(train: int, deploy: int, paper_train: str, paper_deploy: str, gflops: float,
          deploy_gflops: float) -> dict[str, Any]:
    # Published figures are rounded to 0.01M; the exact counts are ours and round to them (tested).
    return dict(family="repvgg", num_params=train, flops=gflops * 1e9, reparameterizable=True,
                param_source=_SOURCE.format(paper_train, paper_deploy),
                layout=_LAYOUT, deploy_params=deploy, deploy_flops=deploy_gflops * 1e9,
                paper_params=paper_train, paper_deploy_params=paper_deploy)


def _build(blocks: Sequence[int], widths: tuple[float, float], num_classes: int, groups: int = 1,
           **kwargs: Any) -> RepVGG:
    layers = _G2 if groups > 1 else ()
    return RepVGG(blocks, widths, num_classes, group_layers=layers, groups=groups, **kwargs)


@register_model(**_meta(9_108_968, 8_309_384, "9.11", "8.31", 1.52, 1.36))
def repvgg_a0(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-A0."""
    return _build(_A, (0.75, 2.5), num_classes, **kwargs)


@register_model(**_meta(14_092_264, 12_789_864, "14.09", "12.79", 2.64, 2.37))
def repvgg_a1(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-A1."""
    return _build(_A, (1.0, 2.5), num_classes, **kwargs)


@register_model(**_meta(28_210_600, 25_499_944, "28.21", "25.5", 5.7, 5.12))
def repvgg_a2(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-A2."""
    return _build(_A, (1.5, 2.75), num_classes, **kwargs)


@register_model(**_meta(15_817_960, 14_339_048, "15.82", "14.34", 3.42, 3.06))
def repvgg_b0(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B0."""
    return _build(_B, (1.0, 2.5), num_classes, **kwargs)


@register_model(**_meta(57_415_016, 51_829_480, "57.42", "51.83", 13.16, 11.82))
def repvgg_b1(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B1."""
    return _build(_B, (2.0, 4.0), num_classes, **kwargs)


@register_model(**_meta(45_782_376, 41_360_104, "45.78", "41.36", 9.82, 8.82))
def repvgg_b1g2(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B1g2: groups of 2 in every other block."""
    return _build(_B, (2.0, 4.0), num_classes, groups=2, **kwargs)


@register_model(**_meta(39_966_056, 36_125_416, "39.97", "36.13", 8.15, 7.32))
def repvgg_b1g4(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B1g4: groups of 4 in every other block."""
    return _build(_B, (2.0, 4.0), num_classes, groups=4, **kwargs)


@register_model(**_meta(89_022_376, 80_315_112, "89.02", "80.32", 20.46, 18.39))
def repvgg_b2(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B2."""
    return _build(_B, (2.5, 5.0), num_classes, **kwargs)


@register_model(**_meta(61_758_376, 55_777_512, "61.76", "55.78", 12.63, 11.34))
def repvgg_b2g4(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B2g4: groups of 4 in every other block."""
    return _build(_B, (2.5, 5.0), num_classes, groups=4, **kwargs)


@register_model(**_meta(123_085_288, 110_960_872, "123.09", "110.96", 29.17, 26.22))
def repvgg_b3(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B3."""
    return _build(_B, (3.0, 5.0), num_classes, **kwargs)


@register_model(**_meta(83_825_128, 75_626_728, "83.83", "75.63", 17.9, 16.08))
def repvgg_b3g4(*, num_classes: int = 1000, **kwargs: Any) -> RepVGG:
    """RepVGG-B3g4: groups of 4 in every other block."""
    return _build(_B, (3.0, 5.0), num_classes, groups=4, **kwargs)


@register_model(family="repvgg", input_size=(32, 32), num_classes=10, num_params=41_098, flops=263_872,
                reparameterizable=True, param_source="clsctl test variant (computed)",
                layout=_LAYOUT, deploy_params=36_474, deploy_flops=221_888)
def test_repvgg(*, num_classes: int = 10, **kwargs: Any) -> RepVGG:
    """A tiny RepVGG for tests: base width 8, one or two blocks per stage, groups of 2 in every other block."""
    return RepVGG((2, 2, 2, 1), (1.0, 1.0), num_classes, base_width=8, group_layers=(2, 4), groups=2, **kwargs)
