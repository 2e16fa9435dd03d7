"""Per-variant model metadata, kept as data so tests can recompute and check it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875  # resize 256, crop 224: torchvision's, timm's and MMPretrain's default evaluation crop


@dataclass(frozen=True)
class ModelMeta:
    """What a user (and the tools) need to know about a registered variant.

    Attributes:
        name: Registered name.
        family: Family name (file it lives in), e.g. ``resnet``.
        input_size: Default (height, width) the variant is meant for.
        mean: Per-channel mean in [0, 1] for normalisation, RGB order.
        std: Per-channel standard deviation in [0, 1], RGB order.
        num_params: Parameter count with the default number of classes.
        num_classes: Default number of classes (1000 for ImageNet variants).
        flops: Fused multiply-adds at ``input_size`` (fvcore's convention), None when not recorded.
        param_source: Where ``num_params`` was published.
        pretrained_url: URL of published ImageNet weights, None when there are none.
        reparameterizable: Whether the variant has a training form that folds into a deploy form.
        class_names: Name of the label set the pretrained weights use ("imagenet-1k"), if any.
        eval_resize: Shorter edge an image is resized to before the centre crop of ``input_size`` when
            evaluating the published weights (torchvision's ``resize_size``); None: ``input_size / 0.875``.
        interpolation: Resampling of that resize (``bilinear``, ``bicubic``, ...).
    """

    name: str
    family: str
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_params: int | None = None
    num_classes: int = 1000
    flops: float | None = None
    param_source: str = ""
    pretrained_url: str | None = None
    reparameterizable: bool = False
    class_names: str | None = None
    eval_resize: int | None = None
    interpolation: str = "bilinear"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_pretrained(self) -> bool:
        """Whether published weights exist for this variant."""
        return self.pretrained_url is not None

    @property
    def eval_resize_size(self) -> int:
        """The shorter edge before the evaluation centre crop: ``eval_resize``, else the zoos' 87.5 % crop."""
        if self.eval_resize is not None:
            return self.eval_resize
        return int(round(min(self.input_size) / DEFAULT_CROP_PCT))

    @property
    def crop_pct(self) -> float:
        """Fraction of the resized image the evaluation crop keeps (timm's ``crop_pct``)."""
        return min(self.input_size) / self.eval_resize_size

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists instead of tuples) for JSON, YAML and checkpoints."""
        data = asdict(self)
        for key in ("input_size", "mean", "std"):
            data[key] = list(data[key])
        return data
