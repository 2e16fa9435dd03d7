"""What every dataset builds on: the :class:`ClassificationDataset` base class, in-memory arrays, seeding of
each sample's augmentation, and the shared count of unreadable samples.

The readers of each layout (:mod:`clsctl.data.layouts`, :mod:`clsctl.data.torchvision_sets`), the wrappers
(:mod:`clsctl.data.wrappers`) and the shard streams (:mod:`clsctl.data.shards`) build on this module, and
:func:`clsctl.data.datasets.build_dataset` calls them: none of them imports its caller.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

OnBadImage = Literal["skip", "fail"]
Target = int | tuple[int, ...]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A stable 63-bit seed for one sample of one epoch."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def seed_sample(seed: int, *, torch_only: bool = False) -> None:
    """Seed every RNG a transform may draw from (torch's CPU generator, Python, NumPy).

    Only the CPU generator: ``torch.manual_seed`` would also queue the lazy seeding of every accelerator
    backend, which costs ~150 µs per call on a machine without CUDA (measured), once per image.

    Args:
        torch_only: Only torch's generator, for pipelines known to draw from nothing else (clsctl's own, see
            ``build_pipeline``): seeding Python's and NumPy's generators costs ~30 and ~45 µs per image
            (measured), a tenth of the time a core has per image at 1,000 img/s.
    """
    torch.default_generator.manual_seed(seed)
    if torch_only:
        return
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _shared_counter(value: int) -> Any:
    """An integer in shared memory: DataLoader workers inherit it, so the main process sees their counts.

    Its lock comes from the spawn context, which forked, spawned and forkserver workers alike may use (a
    fork-context lock cannot go to a spawned worker).
    """
    return multiprocessing.get_context("spawn").Value("q", value)


class BadSampleCounter:
    """Counts the samples left out as unreadable, in shared memory so DataLoader workers' counts add up.

    Pickling for a worker start shares the counter; any other pickle or deepcopy gets a counter of its own.
    """

    def _start_bad_sample_count(self) -> None:
        self._skips = _shared_counter(0)

    @property
    def bad_image_count(self) -> int:
        """Samples left out because they could not be read (all workers together)."""
        return int(self._skips.value)

    def _count_bad_sample(self) -> None:
        with self._skips.get_lock():
            self._skips.value += 1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        try:  # starting a worker process: it shares the counter
            multiprocessing.context.assert_spawning(self._skips)
        except RuntimeError:  # any other pickle or deepcopy: a copy with its own counter
            state["_skips"] = int(self._skips.value)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_skips"], int):
            state["_skips"] = _shared_counter(state["_skips"])
        self.__dict__.update(state)


class ClassificationDataset(Dataset):
    """Base: samples with class names; items are ``(transformed image, target)``.

    Images are decoded by the one decode layer (:mod:`clsctl.data.decode`) to ``(3, H, W)`` uint8 tensors for
    every pipeline (training and evaluation alike), and to RGB PIL images of the same pixels without a transform
    (what tools that show or step through images take).

    Single-label targets are class indices; multi-label targets are ``(C,)`` float tensors with 1 for each
    label, 0 elsewhere and -1 for labels to ignore (VOC "difficult" objects).

    Args:
        samples: ``(path or name, target)`` pairs.
        classes: Class names; ``classes[i]`` names class ``i``.
        transform: Applied to the decoded uint8 image tensor.
        multi_label: Targets are tuples of class indices.
        ignored: For multi-label data, sample index -> class indices to ignore.
    """

    def __init__(self, samples: Sequence[tuple[str, Target]], classes: Sequence[str],
                 transform: Callable[[torch.Tensor], Any] | None = None, *, multi_label: bool = False,
                 ignored: dict[int, tuple[int, ...]] | None = None) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.multi_label = multi_label
        self.ignored = dict(ignored or {})
        self.exclude_replaced = False

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[Target]:
        """Target of every sample, in order."""
        return [target for _, target in self.samples]

    @property
    def bad_image_count(self) -> int:
        """How many times an unreadable image was replaced by another (0 for in-memory data)."""
        return 0

    def _load(self, index: int, pil: bool = False) -> tuple[Any, int]:
        """The decoded image of ``index`` (a ``(3, H, W)`` uint8 tensor, or an RGB PIL image when ``pil``) and the
        index it really came from (a replacement, maybe)."""
        raise NotImplementedError

    def excluded_target(self) -> Any:
        """The target of a sample that evaluation must leave out: ``-1`` (every label ``-1`` if multi-label)."""
        if not self.multi_label:
            return -1
        return torch.full((len(self.classes),), -1.0)

    def encode_target(self, index: int) -> Any:
        """The target of sample ``index`` as a model's loss takes it."""
        target = self.samples[index][1]
        if not self.multi_label:
            return target
        encoded = torch.zeros(len(self.classes))
        encoded[list(target)] = 1.0
        encoded[list(self.ignored.get(index, ()))] = -1.0
        return encoded

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, loaded = self._load(index, pil=self.transform is None)
        if self.transform is not None:
            if seed is not None:
                seed_sample(seed, torch_only=getattr(self.transform, "torch_rng_only", False))
            image = self.transform(image)
        if loaded != index and self.exclude_replaced:
            # Evaluation: the stand-in keeps the batch shape, but its target tells the metrics to skip it, so
            # an unreadable file neither counts twice a neighbour nor counts as a mistake.
            return image, self.excluded_target()
        return image, self.encode_target(loaded)


class ArrayImageDataset(ClassificationDataset):
    """Images held in memory as a uint8 array (``N x H x W`` grey or ``N x H x W x 3`` RGB), e.g. CIFAR.

    Grey images are converted to RGB so models and normalisation see three channels like any other data.

    Args:
        images: The pixel array.
        labels: Class index per image.
        classes: Class names.
        transform: Applied to the uint8 image tensor.
        name: Prefix of each sample's name in ``samples`` (``name/<index>``).
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int], classes: Sequence[str],
                 transform: Callable[[torch.Tensor], Any] | None = None, *, name: str = "array") -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        super().__init__([(f"{name}/{i}", int(y)) for i, y in enumerate(labels)], classes, transform)
        self.images = images

    def _load(self, index: int, pil: bool = False) -> tuple[Any, int]:
        if pil:
            return Image.fromarray(self.images[index]).convert("RGB"), index
        pixels = torch.from_numpy(np.ascontiguousarray(self.images[index]))
        if pixels.ndim == 2:  # grey: the same value in all three channels, as PIL's convert("RGB") gives
            return pixels.unsqueeze(0).repeat(3, 1, 1), index
        return pixels.permute(2, 0, 1), index
