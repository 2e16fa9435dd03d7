"""Small image helpers shared by the tools that write pictures: captions, side-by-side panels, PNG output.

Images are ``H x W x 3`` uint8 RGB NumPy arrays throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
_FONT_SCALE = 0.45
_THICKNESS = 1
_PAD = 4


def to_rgb_array(image: Any) -> np.ndarray:
    """A PIL image, a ``C x H x W`` float tensor in [0, 1] or an array -> ``H x W x 3`` uint8 RGB."""
    if hasattr(image, "detach"):  # a tensor, as tensor-level transforms return
        array = image.detach().cpu().float().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3):
            array = array.transpose(1, 2, 0)
        array = (array.clip(0, 1) * 255).round()
    elif hasattr(image, "convert"):  # PIL
        array = np.asarray(image.convert("RGB"))
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array.astype(np.uint8))


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale by ``factor`` with nearest-neighbour interpolation, so single pixels stay crisp blocks."""
    if factor == 1:
        return image
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def text_size(text: str) -> tuple[int, int]:
    """Width and height (pixels) a caption line needs."""
    import cv2

    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, _THICKNESS)
    return width, height + baseline


def caption(image: np.ndarray, lines: str | Sequence[str], color: tuple[int, int, int] = BLACK) -> np.ndarray:
    """The image under a white strip holding ``lines`` of text; the canvas widens when the text is wider.

    A strip above the picture (rather than text drawn on it) keeps the text readable on any image and leaves
    every pixel of the image visible.
    """
    import cv2

    lines = [lines] if isinstance(lines, str) else list(lines)
    sizes = [text_size(line) for line in lines]
    line_height = max(h for _, h in sizes) + _PAD
    strip = line_height * len(lines) + _PAD
    height, width = image.shape[:2]
    canvas_width = max(width, max(w for w, _ in sizes) + 2 * _PAD)
    canvas = np.full((strip + height, canvas_width, 3), 255, dtype=np.uint8)
    canvas[strip:, :width] = image
    for number, line in enumerate(lines):
        baseline_y = _PAD + line_height * (number + 1) - _PAD // 2 - 2
        cv2.putText(canvas, line, (_PAD, baseline_y), cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, color, _THICKNESS,
                    cv2.LINE_AA)
    return canvas


def hstack(images: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels side by side, top-aligned on a white background, ``gap`` pixels apart."""
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for image in images:
        canvas[: image.shape[0], x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return canvas


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB array as PNG, creating the folder."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def safe_name(text: str) -> str:
    """A string usable in a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed, same output everywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: str | Path) -> Path:
    """Write a matplotlib figure as a PNG (creating the folder, cropped to its content) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    pyplot().close(fig)
    return out
