"""What conversion and export share: a fixed random input, output comparison, parameter and FLOP counts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from clsctl.errors import ClsctlError

RTOL = 1e-4  # relative to the output scale: float32 rounding of folded kernels stays far below this
ATOL = 1e-5  # floor, for outputs that are all close to zero


@dataclass(frozen=True)
class Comparison:
    """How far a converted model's output is from the reference's on the same input.

    Attributes:
        max_abs_diff: Largest absolute difference over all outputs.
        scale: Largest absolute reference output.
        tolerance: ``ATOL + RTOL * scale``; above it the conversion is wrong.
    """

    max_abs_diff: float
    scale: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """Whether the difference is within tolerance."""
        return self.max_abs_diff <= self.tolerance


def random_input(batch: int, size: tuple[int, int] | list[int], seed: int = 0) -> torch.Tensor:
    """A reproducible ``batch x 3 x H x W`` standard-normal input (roughly a normalised image's statistics)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, int(size[0]), int(size[1]), generator=generator)


def compare(reference: torch.Tensor, output: torch.Tensor, *, rtol: float = RTOL, atol: float = ATOL) -> Comparison:
    """Compare two outputs of the same shape (float64 for the arithmetic)."""
    reference, output = torch.as_tensor(reference).double(), torch.as_tensor(output).double()
    if reference.shape != output.shape:
        raise ClsctlError(f"output shape changed: {tuple(reference.shape)} -> {tuple(output.shape)}")
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    diff = float((reference - output).abs().max()) if reference.numel() else 0.0
    return Comparison(diff, scale, atol + rtol * scale)


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, inputs: torch.Tensor) -> int | None:
    """fvcore FLOPs (fused multiply-adds) of one forward pass on ``inputs[:1]``; None when fvcore cannot trace."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracing touch deprecated torch.jit APIs
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model.eval(), (inputs[:1],))
        from clsctl.engine.flop_handles import ATTENTION_HANDLES

        analysis.set_op_handle(**ATTENTION_HANDLES)  # those of `clsctl get-flops`, so both count alike
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        try:
            return int(analysis.total())
        except Exception:  # noqa: BLE001  counting is informative only; conversion does not depend on it
            return None
