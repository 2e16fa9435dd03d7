"""RandAugment with timm's "increasing" operations, as MMPretrain's ``policies='timm_increasing'`` runs it.

Each call picks ``num_ops`` operations (with replacement) from the 15 below and applies each with probability
1/2. An operation's strength is ``level / max_level``; ``level`` is the magnitude plus, with ``magnitude_std``,
normal noise drawn per operation, clipped to ``[0, max_level]``. Strength s means:

===================  ==========================================================================
AutoContrast, Equalize, Invert   (no strength)
Rotate               +-30 s degrees
Posterize            keep 4 - int(4 s) bits (stronger = fewer bits)
Solarize             invert pixels >= 256 - int(256 s)
SolarizeAdd          add int(110 s) to pixels below 128
Color, Contrast, Brightness, Sharpness   enhance by 1 +- 0.9 s
ShearX, ShearY       shear +-0.3 s
TranslateX, TranslateY   shift by +-0.45 s of the width (height)
===================  ==========================================================================

The sign of signed operations is random (1/2 each). Geometric operations fill uncovered pixels with ``fill``.
Every random draw comes from torch's CPU generator, so the per-sample seeds of clsctl's datasets apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def _uniform() -> float:
    return float(torch.rand(()))


def _signed(value: float) -> float:
    return -value if _uniform() < 0.5 else value


def _affine(image: Image.Image, matrix: tuple[float, ...], resample: int, fill: tuple[int, ...]) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, matrix, resample=resample, fillcolor=fill)


def _solarize_add(image: Image.Image, add: int, threshold: int = 128) -> Image.Image:
    table = [min(255, i + add) if i < threshold else i for i in range(256)]
    if image.mode == "RGB":
        table = table * 3
    return image.point(table) if image.mode in ("L", "RGB") else image


def _posterize(image: Image.Image, bits: int) -> Image.Image:
    return image if bits >= 8 else ImageOps.posterize(image, bits)


def _enhance(kind: type) -> Callable[[Image.Image, float, int, tuple[int, ...]], Image.Image]:
    def apply(image: Image.Image, s: float, resample: int, fill: tuple[int, ...]) -> Image.Image:
        return kind(image).enhance(max(0.1, 1.0 + _signed(0.9 * s)))
    return apply


# name -> fn(image, strength, resample, fill)
OPERATIONS: dict[str, Callable[[Image.Image, float, int, tuple[int, ...]], Image.Image]] = {
    "AutoContrast": lambda im, s, r, f: ImageOps.autocontrast(im),
    "Equalize": lambda im, s, r, f: ImageOps.equalize(im),
    "Invert": lambda im, s, r, f: ImageOps.invert(im),
    "Rotate": lambda im, s, r, f: im.rotate(_signed(30.0 * s), resample=r, fillcolor=f),
    "Posterize": lambda im, s, r, f: _posterize(im, 4 - int(4 * s)),
    "Solarize": lambda im, s, r, f: ImageOps.solarize(im, 256 - int(256 * s)),
    "SolarizeAdd": lambda im, s, r, f: _solarize_add(im, int(110 * s)),
    "Color": _enhance(ImageEnhance.Color),
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "ShearX": lambda im, s, r, f: _affine(im, (1, _signed(0.3 * s), 0, 0, 1, 0), r, f),
    "ShearY": lambda im, s, r, f: _affine(im, (1, 0, 0, _signed(0.3 * s), 1, 0), r, f),
    "TranslateX": lambda im, s, r, f: _affine(im, (1, 0, _signed(0.45 * s) * im.size[0], 0, 1, 0), r, f),
    "TranslateY": lambda im, s, r, f: _affine(im, (1, 0, 0, 0, 1, _signed(0.45 * s) * im.size[1]), r, f),
}


class TimmRandAugment:
    """timm's ``rand-m{magnitude}-mstd{magnitude_std}-inc1`` / MMPretrain's ``timm_increasing`` RandAugment.

    Args:
        num_ops: Operations per image (MMPretrain's num_policies).
        magnitude: Strength level (MMPretrain's magnitude_level).
        max_level: Level of full strength (MMPretrain's total_level; timm: 10).
        magnitude_std: Standard deviation of the per-operation noise on the level (0: none).
        interpolation: Resampling of the geometric operations.
        fill: RGB colour of pixels the geometric operations uncover.
        prob: Chance that a picked operation is applied (timm and MMPretrain: 0.5).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 9, max_level: float = 10, magnitude_std: float = 0.0,
                 interpolation: str = "bicubic", fill: Sequence[int] | None = None, prob: float = 0.5) -> None:
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.max_level = max_level
        self.magnitude_std = magnitude_std
        self.interpolation = interpolation
        self.resample = _RESAMPLE[interpolation]
        self.fill = tuple(int(c) for c in fill) if fill is not None else (0, 0, 0)
        self.prob = prob
        self.names = list(OPERATIONS)

    def strength(self) -> float:
        """One draw of an operation's strength in [0, 1]."""
        level = self.magnitude
        if self.magnitude_std > 0:
            level = level + self.magnitude_std * float(torch.randn(()))
        return min(max(level, 0.0), self.max_level) / self.max_level

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(image, torch.Tensor):
            # clsctl's pipeline hands a (3, H, W) uint8 tensor: these operations are Pillow's, so through PIL and
            # back (the random draws are the same either way)
            from clsctl.data.decode import pil_to_tensor

            return pil_to_tensor(self(Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy()))))
        picks = torch.randint(len(self.names), (self.num_ops,)).tolist()
        for index in picks:
            if _uniform() >= self.prob:
                continue
            fill = self.fill if image.mode == "RGB" else self.fill[0]
            image = OPERATIONS[self.names[index]](image, self.strength(), self.resample, fill)
        return image

    def __repr__(self) -> str:
        return (f"TimmRandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, max_level={self.max_level}, "
                f"magnitude_std={self.magnitude_std}, interpolation={self.interpolation}, fill={self.fill})")
