"""Folding conv + BatchNorm branches into one conv: the arithmetic behind structural re-parameterization.

In eval mode ``bn(conv(x)) = conv'(x) + b'`` with ``W' = W * gamma / std`` and ``b' = beta - mean * gamma / std``;
parallel branches with the same stride add up, once their kernels are padded to one size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fuse_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of a bias-free conv with ``kernel`` followed by ``bn`` (in eval mode)."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square kernel to ``size`` x ``size`` around its centre (a 1x1 conv as a 3x3 one)."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad, pad, pad, pad])


def identity_kernel(channels: int, groups: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The ``size`` x ``size`` grouped-conv kernel that maps ``channels`` channels to themselves."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, size, size, dtype=like.dtype, device=like.device)
    index = torch.arange(channels, device=like.device)
    kernel[index, index % per_group, size // 2, size // 2] = 1.0
    return kernel


def deploy_conv(template: nn.Conv2d, kernel: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A biased conv with ``template``'s geometry holding ``kernel`` and ``bias``."""
    conv = nn.Conv2d(template.in_channels, template.out_channels, kernel.shape[-1], stride=template.stride,
                     padding=kernel.shape[-1] // 2, groups=template.groups, bias=True,
                     device=kernel.device, dtype=kernel.dtype)
    with torch.no_grad():
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
    return conv


class ConvBN(nn.Sequential):
    """A bias-free conv followed by BatchNorm (``conv``, ``bn``, as in the official RepVGG/MobileOne code)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups,
                                          bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))

    def fused(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel (padded to ``size``) and bias equivalent to this branch in eval mode."""
        return fuse_bn(pad_kernel(self.conv.weight, size), self.bn)
