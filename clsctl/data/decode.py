"""Image decoding, to uint8 tensors (what the training pipeline takes) or to PIL images (for tools).

:func:`decode_tensor` (a file) and :func:`decode_tensor_bytes` (its bytes) read JPEG, PNG, WebP and GIF with
``torchvision.io.decode_image`` (libjpeg-turbo, libpng, libwebp: no PIL image on the way) and everything else
(BMP, PPM, TIFF, ...) with Pillow. :func:`decode_bytes` gives a PIL image from bytes (tar shards).
:func:`decode_image` gives a PIL image: OpenCV when it is installed (faster, see ``benchmarks/decode.py``),
else Pillow. All give the same pixels: RGB, as stored (EXIF orientation is not applied, as Pillow and
torchvision's ImageFolder do not). A file no decoder reads raises an ``OSError`` with a meaningful message.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

Backend = Literal["auto", "cv2", "pil"]

# What decoding a broken or unreadable file raises (Pillow raises UnidentifiedImageError, an OSError).
DECODE_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, SyntaxError)

# First bytes of the formats torchvision.io decodes itself (WebP: "RIFF", 4 size bytes, "WEBP").
_JPEG, _PNG, _GIF = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", (b"GIF87a", b"GIF89a")


def is_jpeg(data: bytes | memoryview) -> bool:
    """Whether encoded bytes start like a JPEG file."""
    return bytes(data[:3]) == _JPEG


def torchvision_reads(data: bytes | memoryview) -> bool:
    """Whether ``torchvision.io.decode_image`` decodes this format (JPEG, PNG, GIF, WebP), by its first bytes."""
    head = bytes(data[:12])
    return (head.startswith(_JPEG) or head.startswith(_PNG) or head[:6] in _GIF
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def read_bytes(path: str | Path) -> torch.Tensor:
    """A file's bytes as a 1-D uint8 tensor (what ``torchvision.io.decode_*`` take).

    A plain read into a ``bytearray`` (writable, so the tensor owns its memory safely): faster than
    ``np.fromfile`` or ``torchvision.io.read_file`` on small files (24 vs 44 and 32 us for a 60 kB JPEG here).
    """
    with open(path, "rb") as file:
        return torch.frombuffer(bytearray(file.read()), dtype=torch.uint8)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def decode_tensor_bytes(data: torch.Tensor, path: str | Path = "<bytes>") -> torch.Tensor:
    """Decode encoded image bytes (a 1-D uint8 tensor) to a ``(3, H, W)`` uint8 RGB tensor.

    torchvision.io for JPEG, PNG, GIF and WebP (the first frame of an animation); Pillow for other formats
    and for what torchvision refuses (16-bit PNG, unusual JPEG variants), so every file Pillow reads works.

    Raises:
        OSError: No decoder reads it (corrupt, truncated, not an image).
    """
    from torchvision.io import ImageReadMode, decode_image as tv_decode

    if torchvision_reads(data.numpy()):
        try:
            image = tv_decode(data, mode=ImageReadMode.RGB)
            if image.ndim == 4:  # an animated GIF: its first frame, as Pillow gives
                image = image[0]
            if image.dtype == torch.uint8 and image.shape[0] == 3:
                return image
        except RuntimeError:  # torchvision's decoders raise RuntimeError; Pillow has the last word
            pass
    import io

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            img.load()
            return pil_to_tensor(img)
    except DECODE_ERRORS as exc:
        raise OSError(f"cannot decode {path}: {exc}") from exc


def decode_tensor(path: str | Path) -> torch.Tensor:
    """Decode an image file to a ``(3, H, W)`` uint8 RGB tensor (see :func:`decode_tensor_bytes`).

    Raises:
        OSError: The file is missing or no decoder reads it.
    """
    return decode_tensor_bytes(read_bytes(path), path)


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
