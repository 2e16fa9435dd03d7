"""Transform pipelines: recipe entries -> transforms on uint8 image tensors, plus conversion and normalisation.

Images arrive as ``(3, H, W)`` uint8 tensors (see :func:`clsctl.data.decode.decode_tensor`; PIL images are
converted first) and every step runs on tensors with ``torchvision.transforms.v2`` (or a clsctl class where v2
has none). A pipeline runs in three stages whatever the order of its entries: steps on the uint8 image (crops,
flips, colour, RandAugment, ...), then steps on the [0, 1] float tensor (``lighting``), then ``Normalize`` and
steps on the normalised tensor (``random_erasing``), and finally the channel swap for BGR models. Entries keep
their relative order within a stage.

For training, a pipeline without float steps stops after the first stage (``output="uint8"``): batches stay
uint8 (4x less to collate, pin and copy) and :mod:`clsctl.data.device` converts and normalises them on the
device. Each step also accepts a PIL image, so tools that run steps one by one (``browse-dataset``) can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F1
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from clsctl.data.decode import pil_to_tensor
from clsctl.recipe import schema as S

_INTERPOLATION = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "lanczos": T.InterpolationMode.LANCZOS,
}
# For resizing, "nearest" means Pillow's (pixel-centre) rule, which tensors call NEAREST_EXACT.
_RESIZE_INTERPOLATION = {**_INTERPOLATION, "nearest": T.InterpolationMode.NEAREST_EXACT}

IMAGE_STAGE, TENSOR_STAGE, NORMALIZED_STAGE = 0, 1, 2

def _size(size: int | tuple[int, int]) -> int | list[int]:
    return size if isinstance(size, int) else list(size)


class ResizeEdge:
    """Resize so one edge (``short``, ``long``, ``width`` or ``height``) is ``size``, keeping the aspect ratio."""

    def __init__(self, size: int, edge: str = "short", interpolation: str = "bilinear") -> None:
        self.size, self.edge, self.interpolation = size, edge, _RESIZE_INTERPOLATION[interpolation]

    def __call__(self, image: Any) -> Any:
        height, width = F.get_size(image)
        edge = {"short": min(width, height), "long": max(width, height), "width": width, "height": height}[self.edge]
        scale = self.size / edge
        new = (max(1, round(height * scale)), max(1, round(width * scale)))
        return F.resize(image, list(new), interpolation=self.interpolation, antialias=True)

    def __repr__(self) -> str:
        return f"ResizeEdge(size={self.size}, edge={self.edge})"


def efficientnet_center_box(width: int, height: int, size: int, crop_padding: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of EfficientNet's centre crop: side = size / (size + padding) x shorter edge."""
    side = int(size / (size + crop_padding) * min(width, height))
    return (height - side + 1) // 2, (width - side + 1) // 2, side


class EfficientNetCenterCrop:
    """EfficientNet's evaluation crop: a centred square of ``size / (size + crop_padding)`` of the shorter edge,
    resized to ``size`` x ``size`` (for 224 and padding 32: 87.5 % of the shorter edge)."""

    def __init__(self, size: int, crop_padding: int = 32, interpolation: str = "bicubic") -> None:
        self.size, self.crop_padding, self.interpolation = size, crop_padding, _RESIZE_INTERPOLATION[interpolation]

    def __call__(self, image: Any) -> Any:
        height, width = F.get_size(image)
        top, left, side = efficientnet_center_box(width, height, self.size, self.crop_padding)
        return F.resized_crop(image, top, left, side, side, [self.size, self.size], interpolation=self.interpolation,
                              antialias=True)

    def __repr__(self) -> str:
        return f"EfficientNetCenterCrop(size={self.size}, crop_padding={self.crop_padding})"


class EfficientNetRandomCrop:
    """EfficientNet's training crop (TensorFlow's distorted bounding box on the whole image).

    Up to ``max_attempts`` times, draw an area fraction from ``scale`` and a log-uniform aspect ratio from
    ``ratio``; the first box that fits inside the image and covers at least ``min_covered`` of it is cropped
    and resized to ``size`` x ``size``. When none does, fall back to :class:`EfficientNetCenterCrop`.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 min_covered: float = 0.1, max_attempts: int = 10, crop_padding: int = 32,
                 interpolation: str = "bicubic") -> None:
        self.size, self.scale, self.ratio = size, scale, ratio
        self.min_covered, self.max_attempts = min_covered, max_attempts
        self.interpolation = _RESIZE_INTERPOLATION[interpolation]
        self.fallback = EfficientNetCenterCrop(size, crop_padding, interpolation)

    def box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """A random ``(top, left, h, w)`` box, or None when every attempt failed."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target = area * torch.empty(1).uniform_(*self.scale).item()
            aspect = math.exp(torch.empty(1).uniform_(*log_ratio).item())
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height and w * h >= self.min_covered * area:
                top = int(torch.randint(0, height - h + 1, (1,)))
                left = int(torch.randint(0, width - w + 1, (1,)))
                return top, left, h, w
        return None

    def __call__(self, image: Any) -> Any:
        height, width = F.get_size(image)
        box = self.box(width, height)
        if box is None:
            return self.fallback(image)
        return F.resized_crop(image, *box, [self.size, self.size], interpolation=self.interpolation, antialias=True)

    def __repr__(self) -> str:
        return f"EfficientNetRandomCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class Lighting:
    """AlexNet PCA colour noise on a [0, 1] RGB tensor: adds ``eigvec @ (alpha * eigval)`` to every pixel,
    ``alpha ~ N(0, alphastd)`` per image."""

    def __init__(self, alphastd: float, eigval: Sequence[float], eigvec: Sequence[Sequence[float]]) -> None:
        self.alphastd = alphastd
        self.eigval = torch.tensor(eigval, dtype=torch.float32)
        self.eigvec = torch.tensor(eigvec, dtype=torch.float32)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return tensor
        alpha = torch.randn(3) * self.alphastd
        rgb = self.eigvec @ (alpha * self.eigval)
        return tensor + rgb.to(tensor.dtype)[:, None, None]

    def __repr__(self) -> str:
        return f"Lighting(alphastd={self.alphastd})"


class ClippedBoxErasing:
    """MMPretrain's random erasing: with probability ``prob`` one box whose area is a uniform share in ``scale``
    of the image and whose aspect ratio is log-uniform in ``ratio``, clipped to the image, placed uniformly.

    ``value`` fills the box: a number, or ``"random"`` for standard-normal noise (on the normalised tensor this
    is MMPretrain's ``mode='rand'`` with ``fill_color=mean, fill_std=std``, without its clipping to 0-255).
    """

    def __init__(self, prob: float, scale: tuple[float, float], ratio: tuple[float, float],
                 value: float | str = 0.0) -> None:
        self.prob, self.scale, self.ratio, self.value = prob, scale, ratio, value

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of one draw."""
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = math.exp(low + (high - low) * float(torch.rand(())))
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * float(torch.rand(())))
        h = min(int(round(math.sqrt(area * aspect))), height)
        w = min(int(round(math.sqrt(area / aspect))), width)
        top = int(torch.randint(height - h, ())) if height > h else 0
        left = int(torch.randint(width - w, ())) if width > w else 0
        return top, left, h, w

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) >= self.prob:
            return tensor
        top, left, h, w = self.box(*tensor.shape[-2:])
        out = tensor.clone()
        patch = out[..., top:top + h, left:left + w]
        patch.copy_(torch.randn_like(patch) if self.value == "random" else torch.full_like(patch, float(self.value)))
        return out

    def __repr__(self) -> str:
        return f"ClippedBoxErasing(prob={self.prob}, scale={self.scale}, ratio={self.ratio}, value={self.value})"


class TensorStep:
    """A tensor transform that also accepts PIL images (converted to a tensor and back), so that tools which run
    pipeline steps one by one on images (``browse-dataset``) can run it too."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, image: Any) -> Any:
        if isinstance(image, Image.Image):
            return F1.to_pil_image(self.transform(F1.to_tensor(image)).clamp(0, 1))
        if image.dtype == torch.uint8:  # a uint8 image tensor: run in [0, 1] floats, give uint8 back
            return self.transform(image / 255).clamp(0, 1).mul(255).round().to(torch.uint8)
        return self.transform(image)

    def __repr__(self) -> str:
        return f"TensorStep({self.transform!r})"


class SwapRB:
    """RGB -> BGR (and back) on a ``(3, H, W)`` tensor."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.flip(-3)

    def __repr__(self) -> str:
        return "SwapRB()"


class ToFloat:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]`` by ``x / 255``: ``ToTensor``'s arithmetic, which
    :class:`clsctl.data.device.DeviceInput` also uses, so CPU and device normalisation agree bit for bit (v2's
    ``ToDtype`` multiplies by ``1 / 255``, which rounds differently)."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        # contiguous (C, H, W) like ToTensor's, whatever the strides of the uint8 input (decoders give HWC memory)
        return image.to(torch.float32, memory_format=torch.contiguous_format).div_(255)

    def __repr__(self) -> str:
        return "ToFloat()"


class ToImageTensor:
    """A PIL image -> ``(3, H, W)`` uint8 RGB tensor; a tensor passes as it is."""

    def __call__(self, image: Any) -> torch.Tensor:
        return pil_to_tensor(image) if isinstance(image, Image.Image) else image

    def __repr__(self) -> str:
        return "ToImageTensor()"


def stage(step: S.Transform) -> int:
    """Where a step runs: on the uint8 image, on the [0, 1] tensor, or on the normalised tensor."""
    if isinstance(step, S.Lighting):
        return TENSOR_STAGE
    if isinstance(step, S.RandomErasing):
        return NORMALIZED_STAGE
    return IMAGE_STAGE


def _build_raw(step: S.Transform) -> Any:
    # v2 draws the random parameters of these steps from torch's generator exactly as v1 did, so a seeded
    # sample gets the same crop, flip or jitter as with the PIL pipeline before it.
    if isinstance(step, S.Resize):
        return v2.Resize(_size(step.size), interpolation=_RESIZE_INTERPOLATION[step.interpolation], antialias=True)
    if isinstance(step, S.ResizeEdge):
        return ResizeEdge(step.size, step.edge, step.interpolation)
    if isinstance(step, S.RandomResizedCrop):
        return v2.RandomResizedCrop(_size(step.size), scale=step.scale, ratio=step.ratio,
                                    interpolation=_RESIZE_INTERPOLATION[step.interpolation], antialias=True)
    if isinstance(step, S.EfficientNetRandomCrop):
        return EfficientNetRandomCrop(step.size, step.scale, step.ratio, step.min_covered, step.max_attempts,
                                      step.crop_padding, step.interpolation)
    if isinstance(step, S.EfficientNetCenterCrop):
        return EfficientNetCenterCrop(step.size, step.crop_padding, step.interpolation)
    if isinstance(step, S.CenterCrop):
        return v2.CenterCrop(_size(step.size))
    if isinstance(step, S.RandomCrop):
        return v2.RandomCrop(_size(step.size), padding=step.padding or None, padding_mode=step.padding_mode)
    if isinstance(step, S.RandomHorizontalFlip):
        return v2.RandomHorizontalFlip(step.prob)
    if isinstance(step, S.RandomVerticalFlip):
        return v2.RandomVerticalFlip(step.prob)
    if isinstance(step, S.ColorJitter):
        return v2.ColorJitter(step.brightness or None, step.contrast or None, step.saturation or None,
                              step.hue or None)
    if isinstance(step, S.RandomGrayscale):
        return v2.RandomGrayscale(step.prob)
    if isinstance(step, S.RandomRotation):
        return v2.RandomRotation(step.degrees)
    # The auto-augment family stays on torchvision's v1 classes, which run on uint8 tensors too: v2 draws its
    # choices of operation and sign in another order, so the same seed would give another augmentation.
    if isinstance(step, S.RandAugment):
        if step.policy == "timm_increasing":
            from clsctl.data.rand_augment import TimmRandAugment

            return TimmRandAugment(step.num_ops, step.magnitude, step.num_magnitude_bins - 1, step.magnitude_std,
                                   step.interpolation, step.fill)
        return T.RandAugment(step.num_ops, step.magnitude, step.num_magnitude_bins, _INTERPOLATION[step.interpolation],
                             fill=list(step.fill) if step.fill is not None else None)
    if isinstance(step, S.AutoAugment):
        return T.AutoAugment(T.AutoAugmentPolicy(step.policy), _INTERPOLATION[step.interpolation],
                             fill=list(step.fill) if step.fill is not None else None)
    if isinstance(step, S.TrivialAugment):
        return T.TrivialAugmentWide(step.num_magnitude_bins, _INTERPOLATION[step.interpolation])
    if isinstance(step, S.Lighting):
        return Lighting(step.alphastd, step.eigval, step.eigvec)
    if isinstance(step, S.RandomErasing):
        if step.box == "clip":
            return ClippedBoxErasing(step.prob, step.scale, step.ratio, step.value)
        return v2.RandomErasing(step.prob, step.scale, step.ratio, value=step.value)
    raise TypeError(f"no builder for transform {type(step).__name__}")  # a schema entry without a builder is a bug


def build_step(step: S.Transform) -> Any:
    """One recipe transform -> a callable doing it on a uint8 image tensor or a PIL image (float-stage steps take
    both too)."""
    built = _build_raw(step)
    return built if stage(step) == IMAGE_STAGE else TensorStep(built)


def default_pipeline(input_size: Sequence[int]) -> list[S.Transform]:
    """What an empty pipeline means: resize to the model's input size, so images of any size batch."""
    return [S.Resize(type="resize", size=(int(input_size[0]), int(input_size[1])))]


def stays_uint8(pipeline: Sequence[S.Transform]) -> bool:
    """Whether the pipeline has only uint8 image steps, so its output can be normalised later, on the device."""
    return all(stage(step) == IMAGE_STAGE for step in pipeline)


def build_pipeline(pipeline: Sequence[S.Transform], mean: Sequence[float], std: Sequence[float], *,
                   channel_order: str = "rgb", output: Literal["float", "uint8"] = "float") -> v2.Compose:
    """The transform of a split: a decoded image (uint8 tensor or PIL) -> a tensor.

    ``output="float"``: image steps, conversion to [0, 1] float, [0, 1] tensor steps, ``Normalize`` (mean/std
    in RGB order), normalised-tensor steps, and a channel swap when the model takes BGR. ``output="uint8"``:
    the image steps only, leaving conversion, normalisation and channel order to
    :class:`clsctl.data.device.DeviceInput`; a pipeline with float steps (:func:`stays_uint8` is false) is
    built in full whatever ``output`` says, and the device step passes its float output through.
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be rgb or bgr, got {channel_order!r}")
    if output not in ("float", "uint8"):
        raise ValueError(f"output must be float or uint8, got {output!r}")
    by_stage: list[list[Any]] = [[], [], []]
    for step in pipeline:
        by_stage[stage(step)].append(_build_raw(step))
    # Image steps run on uint8 tensors (datasets and readers decode to them, see clsctl.data.decode); a PIL
    # image from a tool is converted first, so every path resizes with the same kernels.
    steps = [ToImageTensor(), *by_stage[IMAGE_STAGE]]
    if output == "float" or not stays_uint8(pipeline):
        steps += [ToFloat(), *by_stage[TENSOR_STAGE], v2.Normalize(list(mean), list(std)),
                  *by_stage[NORMALIZED_STAGE]]
        if channel_order == "bgr":
            steps.append(SwapRB())
    pipeline = v2.Compose(steps)
    # Every step above draws its randomness from torch's generator alone (torchvision v1 and v2 transforms,
    # clsctl's own classes), so seeding a sample need not touch Python's or NumPy's (see seed_sample).
    pipeline.torch_rng_only = True
    return pipeline
