"""Deploy form of a model: structural re-parameterization and conv + BatchNorm folding, in place.

:func:`to_deploy` is what a deploy checkpoint replays on a freshly built model before loading its weights, so
every step here depends only on the architecture (never on weight values) and gives the same module tree each
time: the converted model and a rebuilt-then-converted one have identical state-dict keys and shapes.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from clsctl.models._init import BATCH_NORMS

logger = logging.getLogger("clsctl")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def reparameterize(model: nn.Module) -> list[str]:
    """Call ``reparameterize()`` on every submodule that has one (RepVGG, MobileOne blocks), in place.

    Those methods are idempotent, so a model whose top-level ``reparameterize()`` already converted its blocks
    is fine. Returns the names of the modules whose method was called (empty: nothing to re-parameterize).
    """
    called = []
    # A snapshot: converting a block deletes its branches while we iterate.
    for name, module in list(model.named_modules()):
        method = getattr(module, "reparameterize", None)
        if callable(method):
            method()
            called.append(name)
    return called


def _is_batchnorm(module: nn.Module) -> bool:
    if isinstance(module, BATCH_NORMS):
        # Without running statistics a BatchNorm normalises with batch statistics even in eval mode.
        return module.track_running_stats and module.running_mean is not None
    return type(module).__name__ == "FrozenBatchNorm2d"  # torchvision.ops: fixed statistics, no flag


def _bn_dims_match(conv: nn.Module, bn: nn.Module) -> bool:
    dims = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}
    expected = dims.get(type(conv))
    bn_ok = expected is None or not isinstance(bn, BATCH_NORMS) or isinstance(bn, expected)
    return bn_ok and getattr(bn, "num_features", conv.out_channels) == conv.out_channels


def _pairs_from_graph(model: nn.Module) -> list[tuple[str, str]] | None:
    """``(conv, bn)`` module names where the BatchNorm's only input is the conv's output and nothing else reads
    that output, found by tracing with ``torch.fx``; None when the model cannot be traced."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # data-dependent control flow, asserts on shapes, ...: fall back
        logger.debug("torch.fx cannot trace %s (%s); folding only conv/BN neighbours in nn.Sequential",
                     type(model).__name__, exc)
        return None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _is_batchnorm(modules[node.target]) or len(node.args) != 1:
            continue
        source = node.args[0]
        if not isinstance(source, torch.fx.Node) or source.op != "call_module":
            continue
        conv, bn = modules[source.target], modules[node.target]
        # A module called twice (weight sharing) or a conv output read elsewhere cannot be folded.
        if (isinstance(conv, _CONVS) and len(source.users) == 1 and calls[source.target] == 1
                and calls[node.target] == 1 and _bn_dims_match(conv, bn)):
            pairs.append((source.target, node.target))
    return pairs


def _pairs_from_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    """``(conv, bn)`` neighbours inside ``nn.Sequential`` containers, where the data flow is certain."""
    pairs = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, _CONVS) and _is_batchnorm(bn) and _bn_dims_match(conv, bn):
                join = f"{prefix}." if prefix else ""
                pairs.append((join + conv_name, join + bn_name))
    return pairs


def find_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Names of the ``(conv, BatchNorm)`` pairs :func:`fold_conv_bn` folds, in graph order."""
    pairs = _pairs_from_graph(model)
    return _pairs_from_sequentials(model) if pairs is None else pairs


@torch.no_grad()
def fold_bn_into_conv(conv: nn.Module, bn: nn.Module) -> None:
    """Give ``conv`` the weight and bias of ``bn(conv(x))`` in eval mode (``conv`` gains a bias if it had none)."""
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = beta + (bias - bn.running_mean) * scale
    conv.weight.copy_(conv.weight * scale.reshape(shape))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(new_bias)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)  # also right for nn.Sequential's "0", "1", ... children


def fold_conv_bn(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every BatchNorm that directly follows a conv into that conv, replacing it by ``nn.Identity``.

    The result computes the same function as ``model`` in eval mode (BatchNorm running statistics are used);
    training it further is not the same as training the original. Returns the folded ``(conv, bn)`` names.
    """
    pairs = find_conv_bn_pairs(model)
    for conv_name, bn_name in pairs:
        fold_bn_into_conv(model.get_submodule(conv_name), model.get_submodule(bn_name))
        _set_submodule(model, bn_name, nn.Identity())
    return pairs


def to_deploy(model: nn.Module, fuse_conv_bn: bool = False) -> nn.Module:
    """Convert ``model`` to its deploy form in place and switch it to eval mode.

    Args:
        model: Any model; re-parameterizable blocks are folded, other modules are left alone.
        fuse_conv_bn: Also fold BatchNorm layers into the convs before them (any CNN).

    Returns:
        ``model`` itself.
    """
    model.eval()
    reparameterize(model)
    if fuse_conv_bn:
        fold_conv_bn(model)
    return model
