"""MobileOne (Vasu et al., 2023): depthwise/pointwise blocks with over-parameterized training-time branches.

Each block trains as ``k`` parallel conv+BN branches, a 1x1 conv+BN "scale" branch (for kernels above 1x1)
and a BN skip (when shapes allow); :meth:`MobileOne.reparameterize` folds them into one biased conv per block.
S4 adds squeeze-excitation to the last blocks of stages 3 and 4. Module names follow Apple's ml-mobileone
(``stage0``..``stage4``, ``rbr_conv``, ``rbr_scale``, ``rbr_skip``, ``reparam_conv``, ``linear``).
Deploy parameter counts are the paper's Table 8 (1 decimal, M); the exact counts are ours.
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


class SEBlock(nn.Module):
    """Squeeze-excitation with 1x1 convs (reduce to ``channels / 16``)."""

    def __init__(self, channels: int, ratio: float = 0.0625) -> None:
        super().__init__()
        hidden = int(channels * ratio)
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(scale))))


class MobileOneBlock(nn.Module):
    """``k`` conv+BN branches, a 1x1 conv+BN branch and a BN skip, summed, then (SE and) ReLU.

    Args:
        in_ch: Input channels.
        out_ch: Output channels.
        kernel_size: Kernel of the main branches (3 depthwise, 1 pointwise).
        stride: Stride.
        groups: Conv groups (``in_ch`` for depthwise).
        use_se: Squeeze-excitation after the sum.
        branches: Number of parallel conv+BN branches ``k``.
        deploy: Build the single-conv deploy form directly.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 use_se: bool = False, branches: int = 1, deploy: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.se: nn.Module = SEBlock(out_ch) if use_se else nn.Identity()
        self.activation = nn.ReLU()
        if deploy:
            self.reparam_conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups,
                                          bias=True)
            return
        self.rbr_skip = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.rbr_conv = nn.ModuleList(ConvBN(in_ch, out_ch, kernel_size, stride, groups) for _ in range(branches))
        self.rbr_scale = ConvBN(in_ch, out_ch, 1, stride, groups) if kernel_size > 1 else None

    @property
    def deployed(self) -> bool:
        """Whether the block is in its single-conv deploy form."""
        return hasattr(self, "reparam_conv")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.activation(self.se(self.reparam_conv(x)))
        out = sum(branch(x) for branch in self.rbr_conv)
        if self.rbr_scale is not None:
            out = out + self.rbr_scale(x)
        if self.rbr_skip is not None:
            out = out + self.rbr_skip(x)
        return self.activation(self.se(out))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches into ``reparam_conv`` (uses the BatchNorm running statistics); idempotent."""
        if self.deployed:
            return
        size = self.kernel_size
        template = self.rbr_conv[0].conv
        fused = [branch.fused(size) for branch in self.rbr_conv]
        if self.rbr_scale is not None:
            fused.append(self.rbr_scale.fused(size))
        if self.rbr_skip is not None:
            eye = identity_kernel(template.in_channels, template.groups, size, template.weight)
            fused.append(fuse_bn(eye, self.rbr_skip))
        kernel = torch.stack([k for k, _ in fused]).sum(0)
        bias = torch.stack([b for _, b in fused]).sum(0)
        self.reparam_conv = deploy_conv(template, kernel, bias)
        del self.rbr_conv, self.rbr_scale, self.rbr_skip


class MobileOne(nn.Module):
    """MobileOne classifier.

    Args:
        widths: Width multipliers of stages 1-4 (64, 128, 256 and 512 channels at 1.0).
        num_classes: Classifier size.
        num_blocks: Depthwise+pointwise block pairs in stages 1-4.
        branches: Parallel conv branches ``k`` per block (stage 0 always has one).
        use_se: Squeeze-excitation in the last half of stage 3 and all of stage 4 (S4).
        base_width: 64 in every published variant; tests use smaller.
        deploy: Build the deploy form directly.
    """

    def __init__(self, widths: Sequence[float], num_classes: int = 1000, *,
                 num_blocks: Sequence[int] = (2, 8, 10, 1), branches: int = 1, use_se: bool = False,
                 base_width: int = 64, deploy: bool = False) -> None:
        super().__init__()
        self.in_ch = min(base_width, int(base_width * widths[0]))
        self._branches = branches
        self._deploy = deploy
        self.stage0 = MobileOneBlock(3, self.in_ch, 3, stride=2, deploy=deploy)
        se_blocks = [0, 0, num_blocks[2] // 2 if use_se else 0, num_blocks[3] if use_se else 0]
        stage_widths = [int(base_width * 2**i * w) for i, w in enumerate(widths)]
        self.stage1, self.stage2, self.stage3, self.stage4 = (
            self._make_stage(w, n, se) for w, n, se in zip(stage_widths, num_blocks, se_blocks)
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.num_features = stage_widths[-1]
        self.linear = nn.Linear(self.num_features, num_classes)
        kaiming_convs_and_unit_norms(self)  # MMPretrain's init_cfg: Kaiming convs, BatchNorm 1/0
        normal_head(self.linear)  # its LinearClsHead: N(0, 0.01), bias 0

    def _make_stage(self, width: int, blocks: int, se_blocks: int) -> nn.Sequential:
        layers = []
        for i, stride in enumerate([2] + [1] * (blocks - 1)):
            use_se = i >= blocks - se_blocks
            common = dict(use_se=use_se, branches=self._branches, deploy=self._deploy)
            layers.append(MobileOneBlock(self.in_ch, self.in_ch, 3, stride, groups=self.in_ch, **common))
            layers.append(MobileOneBlock(self.in_ch, width, 1, **common))
            self.in_ch = width
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage."""
        return self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.gap(self.forward_features(x)), 1))

    def reparameterize(self) -> MobileOne:
        """Fold every block into its deploy form, in place; returns the model."""
        for module in self.modules():
            if isinstance(module, MobileOneBlock):
                module.reparameterize()
        return self


_SOURCE = "MobileOne paper Table 8 (deploy {}M) / MMPretrain table (deploy {}M); training form computed"


_STAGES = [["stage0"], ["stage1"], ["stage2"], ["stage3"], ["stage4"]]
# first_conv is that of the training form (the deploy form has one conv per block: stage0.reparam_conv).
_LAYOUT = ModelLayout(classifier="linear", pool="gap", cam_layer="stage4", stages=_STAGES,
                      first_conv="stage0.rbr_conv.0.conv")


def _meta(train: int, deploy: int, paper_deploy: str, mmpretrain_deploy: str, deploy_gflops: float,
          gflops: float | None = None) -> dict[str, Any]:
    # Only deploy-form counts are published (rounded); the training-form count is ours (tested).
    return dict(family="mobileone", num_params=train, flops=None if gflops is None else gflops * 1e9,
                reparameterizable=True, param_source=_SOURCE.format(paper_deploy, mmpretrain_deploy),
                layout=_LAYOUT, deploy_params=deploy, deploy_flops=deploy_gflops * 1e9,
                paper_deploy_params=paper_deploy, mmpretrain_deploy_params=mmpretrain_deploy)


@register_model(**_meta(5_293_272, 2_078_504, "2.1", "2.08", 0.27, 1.088463))
def mobileone_s0(*, num_classes: int = 1000, **kwargs: Any) -> MobileOne:
    """MobileOne-S0: widths (0.75, 1, 1, 2), four conv branches per block."""
    return MobileOne((0.75, 1.0, 1.0, 2.0), num_classes, branches=4, **kwargs)


@register_model(**_meta(4_825_192, 4_764_840, "4.8", "4.76", 0.82, 0.858499))
def mobileone_s1(*, num_classes: int = 1000, **kwargs: Any) -> MobileOne:
    """MobileOne-S1: widths (1.5, 1.5, 2, 2.5)."""
    return MobileOne((1.5, 1.5, 2.0, 2.5), num_classes, **kwargs)


@register_model(**_meta(7_884_648, 7_808_168, "7.8", "7.81", 1.3, 1.338574))
def mobileone_s2(*, num_classes: int = 1000, **kwargs: Any) -> MobileOne:
    """MobileOne-S2: widths (1.5, 2, 2.5, 4)."""
    return MobileOne((1.5, 2.0, 2.5, 4.0), num_classes, **kwargs)


@register_model(**_meta(10_170_600, 10_078_312, "10.1", "10.08", 1.89, 1.94396))
def mobileone_s3(*, num_classes: int = 1000, **kwargs: Any) -> MobileOne:
    """MobileOne-S3: widths (2, 2.5, 3, 4)."""
    return MobileOne((2.0, 2.5, 3.0, 4.0), num_classes, **kwargs)


@register_model(**_meta(14_951_248, 14_838_352, "14.8", "14.84", 2.98, 3.040917))
def mobileone_s4(*, num_classes: int = 1000, **kwargs: Any) -> MobileOne:
    """MobileOne-S4: widths (3, 3.5, 3.5, 4) with squeeze-excitation."""
    return MobileOne((3.0, 3.5, 3.5, 4.0), num_classes, use_se=True, **kwargs)


@register_model(family="mobileone", input_size=(32, 32), num_classes=10, num_params=42_270, flops=313_920,
                reparameterizable=True, param_source="clsctl test variant (computed)",
                layout=_LAYOUT, deploy_params=22_990, deploy_flops=188_480)
def test_mobileone(*, num_classes: int = 10, **kwargs: Any) -> MobileOne:
    """A tiny MobileOne for tests: base width 16, two branches, SE, one or two blocks per stage."""
    return MobileOne((1.0, 1.0, 1.0, 1.0), num_classes, num_blocks=(1, 1, 2, 1), branches=2, use_se=True,
                     base_width=16, **kwargs)
