"""Inception V3 (Szegedy et al., 2016) on torchvision's constructor.

Two choices differ from ``torchvision.models.inception_v3(weights=None)``, both so that the published
weights work and training code sees one tensor:

* ``transform_input`` defaults to True, as torchvision sets it for its ImageNet weights (they expect inputs
  normalised to [-1, 1]; the model converts ImageNet-normalised inputs itself).
* The auxiliary classifier is kept (its parameters are part of the published count and weights) but the
  model returns only the main logits, in training too. Pass ``aux_logits=False`` to drop it.
  Since its output is never used, it is not run in training either and its parameters do not require
  gradients: they would get none, and DistributedDataParallel stops at the second step on parameters that
  get no gradient ("Expected to have finished reduction in the prior iteration").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import tv_build, tv_meta

# Stem (the five plain convs), then the 35x35, 17x17 and 8x8 Inception stages; AuxLogits is a head and is
# never frozen.
_STAGES = [["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"],
           ["Mixed_5b", "Mixed_5c", "Mixed_5d"], ["Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"],
           ["Mixed_7a", "Mixed_7b", "Mixed_7c"]]


def _main_logits(x: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
    return x


def _skip_aux(x: torch.Tensor) -> None:
    """The auxiliary head's forward in training: nothing (its output would be dropped)."""
    return None


@register_model(**tv_meta("inception", 27_161_264, 5.713, "inception_v3_google-0cc3c7bd.pth", classifier="fc",
                          pool="avgpool", cam_layer="Mixed_7c", input_size=(299, 299), stages=_STAGES,
                          first_conv="Conv2d_1a_3x3.conv"))
def inception_v3(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Inception V3 (299x299 input)."""
    kwargs.setdefault("transform_input", True)
    kwargs.setdefault("aux_logits", True)
    kwargs.setdefault("init_weights", True)
    model = tv_build("inception_v3", num_classes, **kwargs)
    # torchvision's init equals MMPretrain's InceptionV3 (TruncNormal(0.1) convs and linears, aux head 0.01 /
    # 0.001, BN 1/0) except that MMPretrain's TruncNormal init also zeroes the linear biases.
    for linear in (m for m in model.modules() if isinstance(m, nn.Linear)):
        nn.init.zeros_(linear.bias)
    # torchvision returns (logits, aux) in training; a module-level function keeps the model picklable.
    model.eager_outputs = _main_logits
    if model.AuxLogits is not None:
        model.AuxLogits.forward = _skip_aux  # torchvision calls it in training only
        model.AuxLogits.requires_grad_(False)
    return model
