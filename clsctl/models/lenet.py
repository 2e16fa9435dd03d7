"""LeNet-5 (LeCun et al., 1998) for 32x32 images.

Three 5x5 convs (6, 16, 120 channels) with tanh and 2x2 average pooling after the first two, then a 84-unit
tanh layer and the classifier. C3 is fully connected to S2 here (the paper connects it partially, which is
why the paper's count, "about 60,000", is a little lower). ``in_channels`` is 3 by default so RGB pipelines
work; use 1 for the classic grayscale model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clsctl.models._factory import register_model
from clsctl.models._meta import ModelLayout


class LeNet5(nn.Module):
    """LeNet-5.

    Args:
        num_classes: Classifier size.
        in_channels: 1 (grayscale) or 3.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh(),
        )
        self.num_features = 120
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model(family="lenet", input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), num_classes=10,
                num_params=62_006, flops=651_720,
                param_source="computed (LeCun et al. 1998 report about 60,000 with a partially connected C3)",
                layout=ModelLayout(classifier="classifier.2", cam_layer="features.4", first_conv="features.0",
                                   stages=[["features.0"], ["features.3"], ["features.6"]]),
                paper_params="about 60k")
def lenet5(*, num_classes: int = 10, **kwargs: Any) -> LeNet5:
    """LeNet-5 (3-channel input by default)."""
    return LeNet5(num_classes, **kwargs)
