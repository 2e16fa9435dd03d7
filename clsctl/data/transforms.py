"""Transform pipelines: recipe entries -> torchvision transforms, plus tensor conversion and normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchvision import transforms as T

from clsctl.recipe import schema as S

_INTERPOLATION = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "lanczos": T.InterpolationMode.LANCZOS,
}


def _size(size: int | tuple[int, int]) -> int | list[int]:
    return size if isinstance(size, int) else list(size)


def build_step(step: S.Transform) -> Any:
    """One recipe transform -> the torchvision transform that does it (on PIL images)."""
    if isinstance(step, S.Resize):
        return T.Resize(_size(step.size), interpolation=_INTERPOLATION[step.interpolation])
    if isinstance(step, S.RandomResizedCrop):
        return T.RandomResizedCrop(_size(step.size), scale=step.scale, ratio=step.ratio,
                                   interpolation=_INTERPOLATION[step.interpolation])
    if isinstance(step, S.CenterCrop):
        return T.CenterCrop(_size(step.size))
    if isinstance(step, S.RandomCrop):
        return T.RandomCrop(_size(step.size), padding=step.padding or None, padding_mode=step.padding_mode)
    if isinstance(step, S.RandomHorizontalFlip):
        return T.RandomHorizontalFlip(step.prob)
    if isinstance(step, S.RandomVerticalFlip):
        return T.RandomVerticalFlip(step.prob)
    if isinstance(step, S.ColorJitter):
        return T.ColorJitter(step.brightness, step.contrast, step.saturation, step.hue)
    if isinstance(step, S.RandomGrayscale):
        return T.RandomGrayscale(step.prob)
    if isinstance(step, S.RandomRotation):
        return T.RandomRotation(step.degrees)
    raise TypeError(f"no builder for transform {type(step).__name__}")  # a schema entry without a builder is a bug


def default_pipeline(input_size: Sequence[int]) -> list[S.Transform]:
    """What an empty pipeline means: resize to the model's input size, so images of any size batch."""
    return [S.Resize(type="resize", size=(int(input_size[0]), int(input_size[1])))]


def build_pipeline(pipeline: Sequence[S.Transform], mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """The recipe's steps, then conversion to a float tensor in [0, 1] and normalisation."""
    steps = [build_step(step) for step in pipeline]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(list(mean), list(std))])


def pipeline_from_dicts(entries: Sequence[dict[str, Any]]) -> list[S.Transform]:
    """Rebuild validated transform entries from plain data (as stored in checkpoints)."""
    from pydantic import TypeAdapter

    adapter = TypeAdapter(list[S.Transform])
    return adapter.validate_python(list(entries))
