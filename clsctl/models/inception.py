"""Inception V3 (Szegedy et al., 2016) on torchvision's constructor.

Two choices differ from ``torchvision.models.inception_v3(weights=None)``, both so that the published
weights work and training code sees one tensor:

* ``transform_input`` defaults to True, as torchvision sets it for its ImageNet weights (they expect inputs
  normalised to [-1, 1]; the model converts ImageNet-normalised inputs itself).
* The auxiliary classifier is kept (its parameters are part of the published count and weights) but the
  model returns only the main logits, in training too. Pass ``aux_logits=False`` to drop it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._tv import tv_build, tv_meta


def _main_logits(x: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
    return x


@register_model(**tv_meta("inception", 27_161_264, 5.713, "inception_v3_google-0cc3c7bd.pth", classifier="fc",
                          pool="avgpool", cam_layer="Mixed_7c", input_size=(299, 299)))
def inception_v3(*, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Inception V3 (299x299 input)."""
    kwargs.setdefault("transform_input", True)
    kwargs.setdefault("aux_logits", True)
    kwargs.setdefault("init_weights", True)
    model = tv_build("inception_v3", num_classes, **kwargs)
    # torchvision returns (logits, aux) in training; a module-level function keeps the model picklable.
    model.eager_outputs = _main_logits
    return model
