"""``clsctl reparameterize``: turn a checkpoint into its deploy form and check it computes the same function."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clsctl.deploy._compare import ATOL, RTOL, Comparison, compare, count_flops, count_params, random_input
from clsctl.errors import ClsctlError

# Training state that means nothing for a deploy-form model (and would not load into it).
TRAINING_KEYS = ("optimizer", "schedule", "scaler", "rng", "format", "version")


@dataclass
class ConversionResult:
    """What :func:`reparameterize_checkpoint` did.

    Attributes:
        out: The deploy checkpoint written.
        model_name: Registered model name.
        reparameterized: Modules whose ``reparameterize()`` was called.
        fused: ``(conv, bn)`` pairs folded together.
        comparison: Outputs before vs after, on a random input.
        input_shape: Shape of that input.
        params_before: Parameters of the training form.
        params_after: Parameters of the deploy form.
        flops_before: FLOPs of one image before (None when fvcore cannot count them).
        flops_after: FLOPs of one image after.
    """

    out: Path
    model_name: str
    reparameterized: list[str]
    fused: list[tuple[str, str]]
    comparison: Comparison
    input_shape: tuple[int, ...]
    params_before: int
    params_after: int
    flops_before: int | None = None
    flops_after: int | None = None


def deploy_payload(ckpt: dict[str, Any], model: torch.nn.Module, fused: bool, check: Comparison) -> dict[str, Any]:
    """The deploy checkpoint: the source checkpoint's recipe, class names and preprocessing, the converted
    weights, and the flags :func:`clsctl.engine.loading.load_checkpoint_model` replays."""
    payload = {key: value for key, value in ckpt.items() if key not in TRAINING_KEYS}
    payload.update(model=model.state_dict(), deploy=True, fused_conv_bn=fused,
                   deploy_check={"max_abs_diff": check.max_abs_diff, "tolerance": check.tolerance})
    return payload


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def reparameterize_checkpoint(checkpoint: str | Path, out: str | Path, *, fuse_conv_bn: bool = False,
                              batch: int = 2, seed: int = 0, rtol: float = RTOL, atol: float = ATOL,
                              count: bool = True) -> ConversionResult:
    """Convert ``checkpoint`` to deploy form, verify it on a random input, and write ``out``.

    Args:
        checkpoint: A clsctl checkpoint (training or deploy form).
        out: Where the deploy checkpoint goes (not the source itself).
        fuse_conv_bn: Also fold BatchNorm into the preceding convs (works for any CNN).
        batch: Images in the random check input.
        seed: Seed of that input.
        rtol: Allowed difference relative to the largest output.
        atol: Allowed absolute difference on top.
        count: Count FLOPs before and after (fvcore; a second or so for big models).

    Raises:
        ClsctlError: Nothing to convert, ``out`` is the source, or the outputs differ beyond tolerance.
    """
    from clsctl.engine.checkpoint import save_checkpoint
    from clsctl.engine.loading import load_checkpoint_model
    from clsctl.models.reparam import fold_conv_bn, reparameterize
    from clsctl.readers import read_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise ClsctlError(f"OUT must differ from CHECKPOINT ({out}): the training checkpoint is kept")
    ckpt = read_checkpoint(checkpoint)
    loaded = load_checkpoint_model(checkpoint, ckpt)
    name = loaded.recipe.model.name
    already_fused = bool(ckpt.get("fused_conv_bn"))
    model = loaded.module.eval()
    size = loaded.input_size
    inputs = random_input(batch, size, seed)
    with torch.inference_mode():
        reference = model(inputs)
    params_before = count_params(model)
    flops_before = count_flops(model, inputs) if count else None

    deployed = copy.deepcopy(model)
    called = reparameterize(deployed)
    fused = fold_conv_bn(deployed) if fuse_conv_bn and not already_fused else []
    if _shapes(model) == _shapes(deployed):
        hint = "" if fuse_conv_bn else "; --fuse-conv-bn folds BatchNorm into convs for any CNN"
        state = "is already in deploy form" if ckpt.get("deploy") else "has no re-parameterizable blocks"
        raise ClsctlError(f"nothing to convert: {checkpoint} ({name}) {state}{hint}")
    # Report the blocks, not the model whose reparameterize() merely loops over them.
    reparameterized = [n for n in called if not any(o.startswith(f"{n}.") or (n == "" and o) for o in called)]
    if ckpt.get("deploy"):
        reparameterized = []  # its blocks were converted already; only the BatchNorm folding is new
    with torch.inference_mode():
        output = deployed(inputs)
    check = compare(reference, output, rtol=rtol, atol=atol)
    if not check.ok:
        raise ClsctlError(f"the deploy form of {name} differs from the original: max abs diff "
                          f"{check.max_abs_diff:.3g} > tolerance {check.tolerance:.3g}; nothing written")
    save_checkpoint(deploy_payload(ckpt, deployed, already_fused or bool(fused), check), out)
    return ConversionResult(
        out=out, model_name=name, reparameterized=reparameterized, fused=fused, comparison=check,
        input_shape=tuple(inputs.shape), params_before=params_before, params_after=count_params(deployed),
        flops_before=flops_before, flops_after=count_flops(deployed, inputs) if count else None,
    )
