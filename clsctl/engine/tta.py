"""Test-time augmentation: several views of each image (:func:`tta_transform`), and a model wrapper that
averages the class probabilities over them (:class:`AverageViews`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from clsctl.data.preprocessing import DEFAULT_CROP_PCT, Preprocessing
from clsctl.errors import ClsctlError
from clsctl.recipe import schema as S

TTA_MODES = ("flip", "five-crop", "ten-crop")


class MultiViewTransform:
    """Several views of one decoded image, stacked: ``(V, 3, H, W)`` (uint8 for the loop to normalise, or float
    when the pipeline has float steps).

    Args:
        before: Steps before the views are cut (uint8 image -> uint8 image).
        views: Image -> list of views.
        after: View -> model input (the preprocessing's remaining conversion).
    """

    def __init__(self, before: Any, views: Any, after: Any) -> None:
        self.before, self.views, self.after = before, views, after
        self.torch_rng_only = True  # every step is deterministic: nothing to seed

    def __call__(self, image: Any) -> torch.Tensor:
        return torch.stack([self.after(view) for view in self.views(self.before(image))])

    def __repr__(self) -> str:
        return f"MultiViewTransform(before={self.before!r}, views={self.views!r}, after={self.after!r})"


class _FlipViews:
    """The image and its mirror image."""

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [image, image.flip(-1)]

    def __repr__(self) -> str:
        return "FlipViews()"


class _CropViews:
    """torchvision's ``FiveCrop`` (four corners and the centre) or ``TenCrop`` (those and the mirror's)."""

    def __init__(self, size: tuple[int, int], mirrored: bool) -> None:
        self.size, self.mirrored = size, mirrored

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        from torchvision.transforms.v2 import functional as F

        crops = list(F.five_crop(image, list(self.size)))
        if self.mirrored:
            crops += list(F.five_crop(image.flip(-1), list(self.size)))
        return crops

    def __repr__(self) -> str:
        return f"{'TenCrop' if self.mirrored else 'FiveCrop'}(size={self.size})"


def tta_transform(prep: Preprocessing, mode: str, output: str = "uint8") -> MultiViewTransform:
    """The views of ``mode``, each prepared as ``prep`` prepares an image.

    * ``flip``: the preprocessed image and its horizontal mirror (MMPretrain's ``TestTimeAug`` with
      ``RandomFlip`` at probability 0 and 1).
    * ``five-crop``: the final centre crop becomes the four corner crops and the centre crop of the same size
      (torchvision's ``FiveCrop``); ``ten-crop`` adds the five of the mirrored image (``TenCrop``). A
      preprocessing that resizes straight to the input size (no centre crop, as a recipe's plain ``resize``)
      resizes the shorter edge to ``input / 0.875`` first, then cuts the crops of the input size.

    Raises:
        ClsctlError: An unknown mode, or five/ten-crop of a preprocessing that ends in neither a centre crop nor
            a resize to the input size.
    """
    from clsctl.data.transforms import build_pipeline, build_step, stage

    if mode not in TTA_MODES:
        raise ClsctlError(f"tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    image_steps = [step for step in prep.steps if stage(step) == 0]
    later_steps = [step for step in prep.steps if stage(step) != 0]
    after = build_pipeline(later_steps, prep.mean, prep.std, channel_order=prep.channel_order, output=output)
    if mode == "flip":
        return MultiViewTransform(_chain([build_step(s) for s in image_steps]), _FlipViews(), after)
    before, size = _before_crops(image_steps, mode)
    views = _CropViews(size, mirrored=mode == "ten-crop")
    return MultiViewTransform(_chain([build_step(s) for s in before]), views, after)


def _before_crops(image_steps: list[S.Transform], mode: str) -> tuple[list[S.Transform], tuple[int, int]]:
    """The steps before the crops are cut, and the crop size."""
    last = image_steps[-1] if image_steps else None
    if isinstance(last, S.CenterCrop):
        size = last.size
        return image_steps[:-1], (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if isinstance(last, S.Resize) and not isinstance(last.size, int):
        height, width = int(last.size[0]), int(last.size[1])
        edge = math.floor(min(height, width) / DEFAULT_CROP_PCT)
        larger = S.Resize(type="resize", size=edge, interpolation=last.interpolation)
        return [*image_steps[:-1], larger], (height, width)
    kind = last.type if last is not None else "none"
    raise ClsctlError(f"--tta {mode} cuts crops in place of the preprocessing's final center_crop (or a resize "
                      f"to the input size), but its last image step is {kind}")


def _chain(steps: list[Any]) -> Any:
    from torchvision.transforms import v2

    from clsctl.data.transforms import ToImageTensor

    return v2.Compose([ToImageTensor(), *steps])


class AverageViews(nn.Module):
    """Runs ``model`` on every view of each image and averages the probabilities, as MMPretrain's
    ``AverageClsScoreTTA`` averages ``pred_score``.

    Input ``(B, V, C, H, W)`` (the views of :class:`MultiViewTransform`); the ``B * V`` views go through
    ``model`` as one batch. The output stands where logits stand, so metrics and scores need no special case:
    the log of the averaged softmax probabilities (softmax of which gives those averages back), or for
    multi-label models the logit of the averaged sigmoid probabilities.

    Args:
        model: The classifier.
        multi_label: Classes are scored independently (sigmoid) instead of by one softmax.
    """

    def __init__(self, model: nn.Module, multi_label: bool = False) -> None:
        super().__init__()
        self.model = model
        self.multi_label = multi_label

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        batch, count = views.shape[:2]
        logits = self.model(views.flatten(0, 1)).float()
        if self.multi_label:
            probs = logits.sigmoid().view(batch, count, -1).mean(1)
            return torch.logit(probs, eps=1e-7)
        probs = logits.softmax(-1).view(batch, count, -1).mean(1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
