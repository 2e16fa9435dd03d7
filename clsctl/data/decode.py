"""The one decode layer: an encoded image (a file, its bytes, a uint8 tensor of them) -> ``(3, H, W)`` uint8 RGB.

Training, evaluation, inference, tar shards and the tools all decode through :func:`decode` (or
:func:`decode_file`), so a file gives the same pixels whichever command reads it. How:

1. The header is read first (:func:`probe`, Pillow's lazy ``Image.open``: no pixels are decoded): format, size,
   frame count, EXIF orientation. An image of more pixels than :func:`max_image_pixels` (a decompression bomb,
   say a 30000 x 30000 PNG of a few kB) is refused before any memory is spent on it.
2. The pixels come from TorchCodec where it is installed (``pip install 'clsctl[codec]'``; JPEG, PNG, WebP,
   AVIF, HEIC), else from ``torchvision.io`` (JPEG, PNG, WebP), else from Pillow (GIF, BMP, TIFF, PPM, ...,
   and whatever the first two refuse). OpenCV decodes nothing. Animations give their first frame, and only
   that frame is decoded (both tensor decoders would decode every frame of a GIF, so GIFs go to Pillow).
3. One conversion for every backend: grey, palette and CMYK images become RGB, alpha is dropped (the colour
   under it is kept, as Pillow's ``convert("RGB")`` does), 16-bit channels become 8-bit by ``round(v / 257)``
   (TorchCodec's rule), and the EXIF orientation is applied (a phone photo is upright, as image viewers,
   OpenCV's ``imread`` and Ultralytics show it).

Every failure is an ``OSError`` (see :data:`DECODE_ERRORS`) whose message says what is wrong, so datasets can
skip an unreadable file (``data.on_bad_image: skip``) and readers can turn it into a one-line error.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger("clsctl")

# What decoding a broken or unreadable file raises (Pillow raises UnidentifiedImageError, an OSError).
DECODE_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, SyntaxError)

DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
"""Images with more pixels are refused: Pillow's own decompression-bomb threshold (2 x its warning limit)."""
MAX_IMAGE_PIXELS_ENV = "CLSCTL_MAX_IMAGE_PIXELS"
MAX_IMAGE_BYTES = 1 << 30
"""Encoded files larger than this (1 GiB) are refused before they are read."""

_JPEG, _PNG, _GIF = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", (b"GIF87a", b"GIF89a")
_EXIF_ORIENTATION = 0x0112
_TENSOR_FORMATS = {"JPEG", "PNG", "WEBP"}  # what torchvision.io decodes (TorchCodec also AVIF and HEIF)
_CODEC_FORMATS = _TENSOR_FORMATS | {"AVIF", "HEIF"}
_ONE_BYTE_MODES = {"1", "L", "P", "RGB", "RGBA", "RGBX", "LA", "PA", "CMYK", "YCbCr", "La", "RGBa"}


class ImageTooLargeError(OSError):
    """An image whose header announces more pixels than :func:`max_image_pixels` allows."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding its pixels.

    Attributes:
        format: Pillow's format name (``JPEG``, ``PNG``, ``GIF``, ``WEBP``, ``BMP``, ...).
        width: Width in pixels, as stored.
        height: Height in pixels, as stored.
        mode: Pillow's mode (``RGB``, ``L``, ``P``, ``CMYK``, ``I;16``, ...).
        animated: Whether the file holds more than one frame.
        orientation: EXIF orientation (1: as stored; 2-8: mirrored and/or rotated).
    """

    format: str
    width: int
    height: int
    mode: str
    animated: bool = False
    orientation: int = 1

    @property
    def pixels(self) -> int:
        """Pixels of one frame."""
        return self.width * self.height


_limit_override: int | None = None


def max_image_pixels() -> int:
    """The largest image (in pixels) decoded: :func:`set_max_image_pixels`'s value, else the environment
    variable ``CLSCTL_MAX_IMAGE_PIXELS`` (which loader worker processes inherit), else
    :data:`DEFAULT_MAX_IMAGE_PIXELS`."""
    if _limit_override is not None:
        return _limit_override
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV)
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            logger.warning("%s=%r is not a whole number; using %d", MAX_IMAGE_PIXELS_ENV, text,
                           DEFAULT_MAX_IMAGE_PIXELS)
    return DEFAULT_MAX_IMAGE_PIXELS


def set_max_image_pixels(limit: int | None) -> None:
    """Set the pixel limit for this process and the loader workers it starts (None: back to the default).

    Args:
        limit: Largest number of pixels (width x height) an image may have.
    """
    global _limit_override
    if limit is not None and limit < 1:
        raise ValueError(f"the pixel limit must be positive, got {limit}")
    _limit_override = limit
    if limit is None:
        os.environ.pop(MAX_IMAGE_PIXELS_ENV, None)
    else:
        os.environ[MAX_IMAGE_PIXELS_ENV] = str(limit)  # spawned workers start with it too


# --------------------------------------------------------------------------- reading bytes


def read_bytes(path: str | Path, limit: int = MAX_IMAGE_BYTES) -> torch.Tensor:
    """A regular file's bytes as a 1-D uint8 tensor (what the tensor decoders take).

    Only regular files are read: a FIFO, a device (``/dev/zero``) or a socket is refused without being opened
    for reading, so nothing blocks or reads forever.

    Raises:
        OSError: Missing, not a regular file, larger than ``limit`` bytes, or unreadable.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise OSError(f"{path} is {info.st_size:,} bytes, over the {limit:,}-byte limit for an image file")
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            data = handle.read(info.st_size + 1)  # one byte more: a file that grows meanwhile is noticed
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > info.st_size:
        raise OSError(f"{path} changed while it was read")
    # A bytearray: writable, so the tensor owns its memory safely (and faster than np.fromfile on small files).
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


def _as_tensor(data: Any) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8))
    raw = bytearray(data)
    return torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)


def is_jpeg(data: bytes | memoryview | np.ndarray) -> bool:
    """Whether encoded bytes start like a JPEG file."""
    return bytes(data[:3]) == _JPEG


# --------------------------------------------------------------------------- the header

_pillow_lock = threading.Lock()


def _open_lazily(buffer: io.BytesIO) -> Image.Image:
    """``Image.open`` (header only) with Pillow's own bomb check off: :func:`probe` applies clsctl's limit,
    which a user may set above Pillow's."""
    with _pillow_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning and plugin chatter: probe decides
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(buffer)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation the header holds (1 without one). Only what the header holds is read: Pillow's
    ``getexif`` of a PNG decodes the whole image to look for an ``eXIf`` chunk after the pixels."""
    try:
        if image.format in ("JPEG", "MPO", "WEBP", "TIFF"):
            exif = image.getexif()
        elif image.info.get("exif"):  # a PNG's eXIf chunk before its pixels
            exif = Image.Exif()
            exif.load(image.info["exif"])
        else:
            return 1
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001  a damaged EXIF block is no reason to refuse the pixels
        return 1
    return value if 1 <= value <= 8 else 1


def probe(data: Any, name: str | Path = "<bytes>") -> ImageHeader:
    """Read an encoded image's header and check it against the pixel limit.

    Args:
        data: The encoded bytes (``bytes``, a 1-D uint8 tensor or array).
        name: Where the bytes came from, for messages.

    Raises:
        ImageTooLargeError: More pixels than :func:`max_image_pixels`.
        OSError: Empty, or not an image Pillow recognises.
    """
    raw = _as_tensor(data)
    if raw.numel() == 0:
        raise OSError(f"cannot decode {name}: empty file (0 bytes)")
    try:
        image = _open_lazily(io.BytesIO(raw.numpy().tobytes()))
    except DECODE_ERRORS as exc:
        raise OSError(f"cannot decode {name}: {_reason(exc)}") from exc
    with image:
        width, height = image.size
        header = ImageHeader(str(image.format or "unknown"), int(width), int(height), str(image.mode),
                             bool(getattr(image, "is_animated", False)), _orientation(image))
    limit = max_image_pixels()
    if header.pixels > limit:
        raise ImageTooLargeError(
            f"{name} is {header.width}x{header.height} = {header.pixels:,} pixels, over the limit of {limit:,} "
            f"(a decompression bomb?); raise it with data.max_image_pixels or {MAX_IMAGE_PIXELS_ENV}")
    return header


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# --------------------------------------------------------------------------- backends


@functools.lru_cache(maxsize=1)
def torchcodec_decoder() -> Any | None:
    """TorchCodec's ``decode_image`` when TorchCodec is installed and loads, else None (torchvision.io is used).

    A TorchCodec build for another torch fails to load its libraries; that is logged once, not raised.
    """
    if os.environ.get("CLSCTL_DECODER", "auto") not in ("auto", "torchcodec"):
        return None
    try:
        from torchcodec.decoders import decode_image as codec_decode
    except Exception as exc:  # noqa: BLE001  ImportError, or OSError/RuntimeError from a mismatched build
        if not isinstance(exc, ImportError):
            logger.debug("TorchCodec is installed but does not load (%s); images decode with torchvision.io", exc)
        return None
    return codec_decode


def backend_name() -> str:
    """``torchcodec``, ``torchvision`` or ``pillow``: what decodes JPEG, PNG and WebP files here.

    ``CLSCTL_DECODER=torchvision`` (or ``pillow``) chooses a fallback backend on purpose, e.g. to compare them.
    """
    choice = os.environ.get("CLSCTL_DECODER", "auto")
    if choice == "pillow":
        return "pillow"
    if choice != "torchvision" and torchcodec_decoder() is not None:
        return "torchcodec"
    return "torchvision"


def _to_rgb8(image: torch.Tensor) -> torch.Tensor | None:
    """A decoder's ``(C, H, W)`` output as uint8 RGB, or None when it is not an image of 1-4 channels."""
    if image.ndim == 4:  # an animation: the first frame
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 2, 3, 4):
        return None
    if image.dtype == torch.uint16:
        image = image.to(torch.float32).div_(257).round_().clamp_(0, 255).to(torch.uint8)
    elif image.dtype != torch.uint8:
        return None
    if image.shape[0] in (1, 2):  # grey (+ alpha)
        return image[:1].expand(3, -1, -1).contiguous()
    return image[:3]


def _decode_tensor_backend(raw: torch.Tensor, header: ImageHeader) -> torch.Tensor | None:
    """TorchCodec or torchvision.io's pixels, or None to let Pillow decode (other formats, refusals)."""
    backend = backend_name()
    if backend == "pillow" or header.animated or header.mode == "CMYK":
        return None  # CMYK JPEGs: libjpeg gives inverted Adobe CMYK to some decoders; Pillow converts it right
    # TorchCodec applies the EXIF orientation itself (torchvision.io and Pillow do not): an oriented file goes
    # to torchvision.io, so that apply_orientation turns every backend's pixels the same way, once.
    if backend == "torchcodec" and header.format in _CODEC_FORMATS and header.orientation == 1:
        try:
            return _to_rgb8(torchcodec_decoder()(raw, mode="UNCHANGED", output_dtype="auto"))
        except (RuntimeError, ValueError):
            return None
    if header.format not in _TENSOR_FORMATS:
        return None
    from torchvision.io import ImageReadMode, decode_image as tv_decode

    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its decoders for TorchCodec and warns on every call; this is the
            # fallback for machines without TorchCodec, so the warning says nothing the user can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            return _to_rgb8(tv_decode(raw, mode=ImageReadMode.RGB))  # RGB: palette PNGs give colours
    except RuntimeError:
        return None


def _pillow_rgb(image: Image.Image) -> np.ndarray:
    """An opened (first-frame) Pillow image as ``H x W x 3`` uint8, with the shared conversion rules."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode in _ONE_BYTE_MODES:
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if mode.startswith("I;16") or mode in ("I", "I;16B", "I;16L", "I;16N"):
        array = np.clip(np.rint(array.astype(np.float32) / 257), 0, 255).astype(np.uint8)
    elif mode == "F":
        array = np.clip(np.rint(array.astype(np.float32)), 0, 255).astype(np.uint8)
    else:
        return np.asarray(image.convert("RGB"))
    return np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array[:, :, :3]


def _decode_pillow(raw: torch.Tensor, name: str | Path) -> torch.Tensor:
    try:
        image = _open_lazily(io.BytesIO(raw.numpy().tobytes()))
        with image:
            image.seek(0)  # the first frame of an animation, and only that frame is decoded
            image.load()
            array = _pillow_rgb(image)
    except DECODE_ERRORS as exc:
        raise OSError(f"cannot decode {name}: {_reason(exc)}") from exc
    return torch.from_numpy(np.array(array, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def apply_orientation(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn a ``(C, H, W)`` image as stored into the upright one its EXIF orientation (1-8) describes, as
    ``PIL.ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1).flip(-2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return image.transpose(-1, -2).flip(-1)
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return image.transpose(-1, -2).flip(-2)
    return image


# --------------------------------------------------------------------------- the entry points


def decode(data: Any, name: str | Path = "<bytes>") -> torch.Tensor:
    """Decode encoded image bytes to a ``(3, H, W)`` uint8 RGB tensor (upright).

    Args:
        data: The encoded file content: ``bytes``, a 1-D uint8 tensor or array.
        name: Where the bytes came from, for messages.

    Raises:
        ImageTooLargeError: More pixels than :func:`max_image_pixels`.
        OSError: Empty, corrupt, truncated or not an image any backend reads.
    """
    raw = _as_tensor(data)
    header = probe(raw, name)
    image = _decode_tensor_backend(raw, header)
    if image is None or tuple(image.shape[-2:]) != (header.height, header.width):
        image = _decode_pillow(raw, name)
    # As the decoders give it: often channels-last memory behind the (3, H, W) view, which the uint8 resize
    # kernels prefer anyway; a copy to contiguous memory would cost a tenth of the decode.
    return apply_orientation(image, header.orientation)


def decode_file(path: str | Path) -> torch.Tensor:
    """Decode an image file (see :func:`decode`).

    Raises:
        OSError: Missing, not a regular file, too large, or not an image any backend reads.
    """
    return decode(read_bytes(path), path)


def decode_pil(path_or_data: Any, name: str | Path | None = None) -> Image.Image:
    """The same pixels as :func:`decode` (of a file path, or of bytes), as an RGB PIL image, for tools that
    draw or resize pictures with Pillow."""
    if isinstance(path_or_data, (str, Path)):
        tensor = decode_file(path_or_data)
    else:
        tensor = decode(path_or_data, name or "<bytes>")
    return Image.fromarray(tensor.permute(1, 2, 0).numpy())


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image (already decoded) as a ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
