"""Image decoding: OpenCV when it is installed (faster, see ``benchmarks/decode.py``), else Pillow.

Both give the same result: a fully decoded RGB PIL image, pixels as stored (EXIF orientation is not applied,
as Pillow and torchvision's ImageFolder do not). Files OpenCV cannot read (GIF, some TIFF, corrupt files) go
to Pillow, which either reads them or raises a meaningful error.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from PIL import Image

Backend = Literal["auto", "cv2", "pil"]

# What decoding a broken or unreadable file raises (Pillow raises UnidentifiedImageError, an OSError).
DECODE_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, SyntaxError)


@functools.lru_cache(maxsize=1)
def opencv() -> Any | None:
    """The ``cv2`` module, or None when OpenCV is not installed.

    On first use OpenCV is limited to one thread, in the process that imports it and so (by inheritance) in
    every loader worker forked from it: the workers already decode in parallel, an OpenCV pool per worker would
    oversubscribe the cores, and changing the thread count inside a forked worker can deadlock on the pool's
    locks copied from the parent (seen here).
    """
    global _OPENCV_READY
    try:
        import cv2
    except ImportError:  # opencv is optional: Pillow does everything, only slower
        return None
    if not _OPENCV_READY:
        cv2.setNumThreads(1)
        _OPENCV_READY = True
    return cv2


_OPENCV_READY = False


def decode_pil(path: str | Path) -> Image.Image:
    """Decode with Pillow, fully (so a truncated file fails here, not in a transform)."""
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def decode_cv2(path: str | Path) -> Image.Image:
    """Decode with OpenCV; raises ``OSError`` when OpenCV cannot read the file."""
    cv2 = opencv()
    if cv2 is None:
        raise OSError("OpenCV is not installed")
    array = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if array is None:
        raise OSError(f"OpenCV cannot decode {path}")
    return Image.fromarray(cv2.cvtColor(array, cv2.COLOR_BGR2RGB))


def decode_image(path: str | Path, backend: Backend = "auto") -> Image.Image:
    """Decode an image file to RGB.

    Args:
        path: Image file.
        backend: ``auto`` (OpenCV, Pillow for what OpenCV cannot read), ``cv2`` or ``pil``.

    Raises:
        OSError: The file is missing or is not a readable image (also ``ValueError``/``SyntaxError`` from
            some Pillow plugins; catch :data:`DECODE_ERRORS`).
    """
    if backend == "pil" or (backend == "auto" and opencv() is None):
        return decode_pil(path)
    try:
        return decode_cv2(path)
    except OSError:
        if backend == "cv2":
            raise
        return decode_pil(path)


def decode_bytes(data: Any, path: str | Path = "<bytes>") -> Image.Image:
    """Decode encoded image bytes (a 1-D uint8 tensor or array, or ``bytes``), as :func:`decode_image` decodes
    files: OpenCV when it reads them, else Pillow; RGB.

    Args:
        data: The encoded file content.
        path: Where the bytes came from, for messages.

    Raises:
        OSError: Neither decoder reads them (also ``ValueError``/``SyntaxError``; catch :data:`DECODE_ERRORS`).
    """
    import io

    import numpy as np

    raw = data.numpy() if hasattr(data, "numpy") else np.frombuffer(data, dtype=np.uint8)
    cv2 = opencv()
    if cv2 is not None and raw.size:
        array = cv2.imdecode(raw, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if array is not None:
            return Image.fromarray(cv2.cvtColor(array, cv2.COLOR_BGR2RGB))
    try:
        with Image.open(io.BytesIO(raw.tobytes())) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise OSError(f"cannot decode {path}: {exc}") from exc
