"""``data.decode: gpu``: JPEG files decoded in batches on the GPU (nvJPEG), their pipeline run there after.

Loader workers only read each JPEG's bytes (:class:`EncodedImage`, no decoding, no transform); the main
process decodes a whole batch with one ``torchvision.io.decode_jpeg(list, device="cuda")`` call and runs the
split's transform pipeline (random crop, flip, ...) on each decoded image on the GPU, seeded by the sample's
own seed, as a worker would have. The CPU cores that decoding would take are free for everything else.

What nvJPEG cannot take falls back per file, with a warning: other formats (PNG, WebP, ...) are decoded and
transformed in the worker as with ``decode: cpu``; a JPEG the GPU refuses is decoded on the CPU in the main
process. A file no decoder reads is an unreadable image as usual: ``on_bad_image: fail`` stops, ``skip``
replaces it, here by another image of the same batch (with its target; an evaluation leaves it out).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from clsctl.errors import DataError

logger = logging.getLogger("clsctl")


@dataclass
class EncodedImage:
    """One sample's JPEG bytes, to be decoded and transformed in the main process.

    Attributes:
        data: The file's bytes, 1-D uint8.
        seed: The sample's augmentation seed (None: not seeded).
        path: The file (for messages).
        split: Whose pipeline to run (``train``, ``val``, ...).
    """

    data: torch.Tensor
    seed: int | None
    path: str
    split: str


class EncodedBatch:
    """A collated batch whose images are still JPEG bytes (:class:`EncodedImage`) or, for files decoded in the
    worker, finished uint8 tensors."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)


def collate(batch: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
    """``default_collate``, except that a batch with JPEG bytes in it becomes an :class:`EncodedBatch`."""
    images = [image for image, _ in batch]
    if not any(isinstance(image, EncodedImage) for image in images):
        return default_collate(batch)
    return EncodedBatch(images), default_collate([target for _, target in batch])


def jpeg_complete(data: torch.Tensor) -> bool:
    """Whether bytes look like a whole JPEG file: start of image first, end of image (FF D9) at the end (a few
    padding bytes after it allowed). A cheap check that sends truncated files down the ordinary CPU path."""
    head = bytes(data[:3].numpy())
    tail = bytes(data[-16:].numpy())
    return head == b"\xff\xd8\xff" and b"\xff\xd9" in tail


@contextlib.contextmanager
def own_random_state() -> Iterator[None]:
    """Run seeded per-sample transforms in the main process without touching its RNGs (torch CPU, Python, NumPy)."""
    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


class BatchDecoder:
    """Decodes an :class:`EncodedBatch` on the device and runs each split's pipeline there.

    Args:
        transforms: Split name -> its transform pipeline with uint8 output (see ``build_pipeline``).
        on_bad_image: ``skip`` or ``fail``, as ``data.on_bad_image``.
        decode_device: Where to decode (default: the batch's device). Tests use ``cpu`` to run this logic
            without a GPU.
    """

    def __init__(self, transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], on_bad_image: str = "skip",
                 decode_device: torch.device | str | None = None) -> None:
        self.transforms = dict(transforms)
        self.on_bad_image = on_bad_image
        self.decode_device = torch.device(decode_device) if decode_device is not None else None
        self.bad_images = 0
        self._warned: set[str] = set()

    @staticmethod
    def handles(images: Any) -> bool:
        """Whether a loader batch is one this decoder decodes."""
        return isinstance(images, EncodedBatch)

    def _warn_once(self, path: str, message: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            logger.warning(message)

    def _decode(self, items: list[EncodedImage], device: torch.device) -> list[torch.Tensor | None]:
        """Each item decoded on ``device``; None where no decoder reads it."""
        from torchvision.io import ImageReadMode, decode_jpeg

        from clsctl.data.decode import decode

        if not items:
            return []
        if device.type == "cuda":
            # torchvision's nvJPEG path allocates its outputs on this stream but decodes on a pool stream of its
            # own without first waiting for this one, so a block freed here while queued kernels still read it
            # could be overwritten (pytorch/vision#9606). Waiting for the queued work closes that window; it
            # costs the overlap of this batch's decoding with the previous step's tail.
            torch.cuda.current_stream(device).synchronize()
        try:  # one call for the batch: nvJPEG decodes the images together
            return list(decode_jpeg([item.data for item in items], mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            pass  # one bad file fails the batch call: find it, one by one
        decoded: list[torch.Tensor | None] = []
        for item in items:
            try:
                decoded.append(decode_jpeg(item.data, mode=ImageReadMode.RGB, device=device))
                continue
            except RuntimeError as exc:
                reason = str(exc).splitlines()[0]
            try:  # what the GPU decoder refuses, the CPU may read (torchvision.io, then Pillow)
                decoded.append(decode(item.data, item.path).to(device))
                self._warn_once(item.path, f"{item.path}: the GPU decoder cannot read it ({reason}); decoded on "
                                           f"the CPU")
            except OSError as exc:
                if self.on_bad_image == "fail":
                    raise DataError(f"cannot read image {item.path}: {exc} (set data.on_bad_image: skip to skip "
                                    f"unreadable images)") from exc
                self._warn_once(item.path, f"skipping unreadable image {item.path} ({exc}); using another image "
                                           f"of the batch instead")
                decoded.append(None)
        return decoded

    def __call__(self, batch: EncodedBatch, targets: torch.Tensor,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch as an ``(N, 3, H, W)`` uint8 tensor on ``device``, and its targets (changed only where an
        unreadable image was replaced)."""
        positions = [i for i, item in enumerate(batch.items) if isinstance(item, EncodedImage)]
        encoded = [batch.items[i] for i in positions]
        decoded = self._decode(encoded, self.decode_device or device)
        images: list[torch.Tensor | None] = [None if isinstance(item, EncodedImage) else item.to(device)
                                             for item in batch.items]
        with own_random_state():
            for position, item, image in zip(positions, encoded, decoded):
                if image is None:
                    continue
                if item.seed is not None:
                    from clsctl.data.dataset_base import seed_sample

                    transform = self.transforms[item.split]
                    seed_sample(item.seed, torch_only=getattr(transform, "torch_rng_only", False))
                images[position] = self.transforms[item.split](image).to(device)
        good = [i for i, image in enumerate(images) if image is not None]
        if not good:
            raise DataError(f"no image of a batch could be read (e.g. {encoded[0].path}); check the dataset files")
        bad = [i for i, image in enumerate(images) if image is None]
        if bad:
            targets = targets.clone()
            for i in bad:
                self.bad_images += 1
                images[i] = images[good[0]]
                train = batch.items[i].split == "train"
                targets[i] = targets[good[0]] if train else -1  # an evaluation leaves the stand-in out
        return torch.stack(images), targets  # type: ignore[arg-type]
