"""``get-flops``: FLOPs, parameters and activations of a model, counted with fvcore.

Convention: one fused multiply-add counts as one FLOP, as fvcore and the published model-zoo tables (torchvision,
MMPretrain, timm) count them, so a ResNet-50 at 224x224 is 4.1 G. Element-wise operators (additions, activations,
normalisation arithmetic) are mostly not counted; :attr:`FlopsReport.uncounted` lists the ones this model runs.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clsctl.engine.flop_handles import ATTENTION_HANDLES
from clsctl.errors import ClsctlError

CONVENTION = "one fused multiply-add = one FLOP (fvcore / model-zoo convention)"


@dataclass
class FlopsReport:
    """What :func:`count_flops` measured.

    Attributes:
        source: Model name, recipe or checkpoint the model came from.
        model_name: Registered model name.
        input_shape: ``(1, 3, H, W)``.
        flops: Fused multiply-adds of one forward pass.
        params: Parameters.
        activations: Output elements of convolutions, linear layers and matrix products (fvcore's activation count).
        uncounted: Operators that ran but were not counted, with how many times each ran.
        by_operator: FLOPs per counted operator kind.
        table: Per-module breakdown (when asked for).
    """

    source: str
    model_name: str
    input_shape: tuple[int, ...]
    flops: int
    params: int
    activations: int
    uncounted: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    table: str | None = None
    convention: str = CONVENTION


def _parse_shape(shape: tuple[int, ...] | list[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    if not shape:
        return int(default[0]), int(default[1])
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    raise ClsctlError(f"--shape takes one size (square) or two (height width), got {len(shape)} values")


def count_flops(source: str | Path | Any, shape: tuple[int, ...] | list[int] | None = None, *, table: bool = False,
                depth: int = 3, overrides: Sequence[str] = (), device: str | None = "cpu") -> FlopsReport:
    """Count FLOPs, parameters and activations of one forward pass on a ``1 x 3 x H x W`` input.

    Args:
        source: Registered model name (``convnext-tiny``), recipe YAML, checkpoint, or a loaded model
            (:class:`~clsctl.engine.loading.LoadedModel`, counted where it is).
        shape: ``(size,)`` or ``(height, width)``; default the model's input size.
        table: Also build the per-module breakdown.
        depth: Module depth of the breakdown.
        overrides: ``path.to.key=value`` changes to a recipe ``source``.
        device: Where the model is traced (``cpu``, ``cuda``, ``auto``); the count does not depend on it.
    """
    import torch

    from clsctl.engine.build import resolve_device
    from clsctl.engine.loading import LoadedModel, load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import touches deprecated torch.jit APIs
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, flop_count_table, parameter_count

    if isinstance(source, LoadedModel):
        loaded, dev = source, source.device
    else:
        dev = resolve_device(device)
        # A recipe's model gets the class count of model.num_classes, else of its train dataset when that can be
        # scanned, else the family default; no weights are loaded (they do not change the count).
        loaded = load_model(source, overrides=tuple(overrides), load_weights=False, device=dev)
    model, name = loaded.require_pytorch("get-flops"), loaded.model_name
    height, width = _parse_shape(shape, loaded.input_size)
    if height < 1 or width < 1:
        raise ClsctlError(f"--shape must be positive, got {height}x{width}")
    inputs = (torch.zeros(1, 3, height, width, device=dev),)
    # Traced with gradients enabled, as in training: under no_grad nn.MultiheadAttention switches to a fused
    # kernel (counted by native_mha_flop_handle too, but the unfused path is what the published figures count).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter from torch.jit
        flops = FlopCountAnalysis(model, inputs).set_op_handle(**ATTENTION_HANDLES)
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        activations = ActivationCountAnalysis(model, inputs)
        activations.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        try:
            total = int(flops.total())
        except (RuntimeError, AssertionError, ValueError) as exc:  # e.g. a ViT asserting its built-in image size
            raise ClsctlError(f"{name} does not run on a {height}x{width} input: {str(exc).splitlines()[0]}") from exc
        report = FlopsReport(
            source=loaded.origin.source if isinstance(source, LoadedModel) else str(source), model_name=name, input_shape=tuple(inputs[0].shape), flops=total,
            params=int(parameter_count(model)[""]), activations=int(activations.total()),
            uncounted=dict(Counter(flops.unsupported_ops()).most_common()),
            by_operator=dict(Counter(flops.by_operator()).most_common()),
        )
        if table:
            report.table = flop_count_table(flops, max_depth=depth, activations=activations, show_param_shapes=False)
    return report
