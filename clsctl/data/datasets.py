"""Datasets: a list of samples with class names, read from image files or from arrays in memory.

Every dataset here (the base class and in-memory arrays are in :mod:`clsctl.data.dataset_base`; every wrapper in :mod:`clsctl.data.wrappers`) has ``.samples`` (``(path, target)``
pairs; a target is a class index, or a tuple of indices for multi-label data), ``.classes``, ``__len__`` and
``__getitem__`` taking an index or an ``(index, seed)`` key; the seed makes augmentation of that sample
deterministic whatever the worker process or the resume point.

:func:`build_dataset` turns a recipe entry into one; the readers of each file layout live in
:mod:`clsctl.data.layouts` and :mod:`clsctl.data.torchvision_sets`, which (like the wrappers and the shard
streams) never import this module back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from clsctl.data.dataset_base import BadSampleCounter, ClassificationDataset, OnBadImage, Target
from clsctl.data.decode import DECODE_ERRORS, decode_file, decode_pil
from clsctl.data.layouts import read_annotation_file, read_class_names
from clsctl.errors import DataError
from clsctl.recipe import schema as S

logger = logging.getLogger("clsctl")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

# How many following samples a bad image may be replaced by before giving up (a folder of broken files
# is a data problem to report, not to skip silently).
MAX_REPLACEMENTS = 50


class ImageListDataset(BadSampleCounter, ClassificationDataset):
    """Samples stored as image files.

    An unreadable file either stops with a :class:`DataError` (``on_bad_image="fail"``) or is replaced by
    the next readable sample (``"skip"``, the default): one broken file never ends a long run. Each
    replacement logs a warning (once per file and process) and adds to :attr:`bad_image_count`, which
    DataLoader worker processes share with the main process.

    Args:
        samples: Image paths with targets.
        classes: Class names.
        transform: Applied to the decoded uint8 image tensor.
        on_bad_image: ``skip`` or ``fail``.
        multi_label: Targets are tuples of class indices.
        ignored: Multi-label labels to ignore, per sample index.
    """

    def __init__(self, samples: Sequence[tuple[str, Target]], classes: Sequence[str],
                 transform: Callable[[torch.Tensor], Any] | None = None, *, on_bad_image: OnBadImage = "skip",
                 multi_label: bool = False, ignored: dict[int, tuple[int, ...]] | None = None) -> None:
        super().__init__(samples, classes, transform, multi_label=multi_label, ignored=ignored)
        if on_bad_image not in ("skip", "fail"):
            raise ValueError(f"on_bad_image must be skip or fail, got {on_bad_image!r}")
        self.on_bad_image = on_bad_image
        self._start_bad_sample_count()
        self._warned: set[str] = set()
        self.encoded_split: str | None = None  # data.decode: gpu: JPEGs leave as bytes, for this split's pipeline

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        if self.encoded_split is not None:
            index, seed = key if isinstance(key, tuple) else (key, None)
            encoded = self._encoded(index, seed)
            if encoded is not None:
                return encoded, self.encode_target(index)
        return super().__getitem__(key)

    def _encoded(self, index: int, seed: int | None) -> Any:
        """The sample's JPEG bytes for :mod:`clsctl.data.gpu_decode`, or None when the file is not a whole JPEG
        (the ordinary CPU path then decodes it, or reports it unreadable)."""
        from clsctl.data.decode import is_jpeg, probe, read_bytes
        from clsctl.data.gpu_decode import EncodedImage, jpeg_complete

        path = self.samples[index][0]
        try:
            data = read_bytes(path)
            header = probe(data, path) if len(data) > 4 and is_jpeg(data.numpy()) else None
        except OSError:
            return None  # the CPU path reports it (too large, unreadable)
        # nvJPEG decodes the pixels as stored: a JPEG to turn upright, or in CMYK, goes the CPU way, so both
        # paths give the same pixels (clsctl.data.decode).
        plain = header is not None and header.orientation == 1 and header.mode in ("RGB", "L")
        if plain and jpeg_complete(data):
            return EncodedImage(data, seed, path, self.encoded_split)
        if path not in self._warned:
            self._warned.add(path)
            logger.warning("%s is not a complete JPEG file: decoded on the CPU (data.decode: gpu takes JPEGs)", path)
        return None

    def _load(self, index: int, pil: bool = False) -> tuple[Any, int]:
        tries = min(len(self.samples), MAX_REPLACEMENTS + 1)
        for attempt in range(tries):
            current = (index + attempt) % len(self.samples)
            path = self.samples[current][0]
            try:
                return (decode_pil(path) if pil else decode_file(path)), current
            except DECODE_ERRORS as exc:
                if self.on_bad_image == "fail":
                    raise DataError(f"cannot read image {path}: {exc} (set data.on_bad_image: skip to skip "
                                    f"unreadable images)") from exc
                self._count_bad_sample()
                if path not in self._warned:
                    self._warned.add(path)
                    logger.warning("skipping unreadable image %s (%s); using the next sample instead", path, exc)
        raise DataError(f"{tries} images in a row from {self.samples[index][0]} on cannot be read; "
                        "check the dataset files")


def scan_image_folder(root: Path, classes: Sequence[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """Find ``root/<class>/**/<image>`` samples; classes are the sorted folder names unless given."""
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    else:
        missing = [c for c in classes if c not in found]
        if missing:
            raise DataError(f"{root}: no folder for classes {missing} (found: {found})")
    if not classes:
        raise DataError(f"{root}: no class folders; expected {root}/<class name>/<images>")
    samples = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        samples += [(str(p), label) for p in files]
    if not samples:
        raise DataError(f"{root}: no images found in its class folders (extensions: {', '.join(IMG_EXTENSIONS)})")
    return samples, list(classes)


def resolve_path(path: str, base: Path) -> Path:
    """``path`` itself when absolute, else relative to ``base``."""
    return Path(path) if Path(path).is_absolute() else base / path


def build_dataset(config: S.Dataset, transform: Callable | None = None, base_dir: Path | None = None, *,
                  on_bad_image: OnBadImage = "skip") -> ClassificationDataset:
    """Build the dataset a recipe's ``data.<split>`` entry describes.

    Args:
        config: The validated dataset entry.
        transform: Applied to each decoded uint8 image tensor.
        base_dir: Folder relative paths are resolved against (default: the working directory).
        on_bad_image: What an unreadable image file does: ``skip`` (replace it, count it) or ``fail``.
    """
    from clsctl.data import layouts, torchvision_sets, wrappers

    base = base_dir or Path.cwd()
    if isinstance(config, S.WebDatasetShards):
        from clsctl.data.shards import build_shard_dataset

        return build_shard_dataset(config, transform, base, on_bad_image=on_bad_image)  # type: ignore[return-value]
    if isinstance(config, wrappers.WRAPPER_CONFIGS):
        return wrappers.build_wrapper(config, transform, base, build_dataset, on_bad_image=on_bad_image)
    if isinstance(config, S.TorchvisionDataset):
        return torchvision_sets.build_torchvision_dataset(config, transform, base)
    root = resolve_path(config.root, base)
    multi_label, ignored = False, None
    if isinstance(config, S.ImageFolderDataset):
        samples, classes = scan_image_folder(root, config.classes)
    elif isinstance(config, S.AnnotationFileDataset):
        classes = read_class_names(config.classes, base)
        samples = read_annotation_file(root, resolve_path(config.ann_file, base), classes)
    elif isinstance(config, S.ImageNetDataset):
        samples, classes = layouts.read_imagenet(root, config.split, config.classes, base)
    elif isinstance(config, S.CUBDataset):
        samples, classes = layouts.read_cub(root, config.split)
    elif isinstance(config, S.VOCDataset):
        samples, classes, ignored = layouts.read_voc(root, config.split, config.difficult)
        multi_label = True
    elif isinstance(config, S.OpenMMLabJsonDataset):
        ann = resolve_path(config.ann_file, base)
        samples, classes, multi_label = layouts.read_openmmlab_json(root, ann, config.classes, base)
    else:
        raise TypeError(f"no builder for dataset {type(config).__name__}")  # a schema entry without a builder
    return ImageListDataset(samples, classes, transform, on_bad_image=on_bad_image, multi_label=multi_label,
                            ignored=ignored)


def _leaves(dataset: ClassificationDataset) -> Iterator[ClassificationDataset]:
    """The datasets under wrappers (``inner``, ``parts``), and ``dataset`` itself."""
    yield dataset
    for child in [getattr(dataset, "inner", None), *getattr(dataset, "parts", [])]:
        if isinstance(child, ClassificationDataset):
            yield from _leaves(child)


def encode_jpegs(dataset: ClassificationDataset, split: str) -> bool:
    """Make the datasets that read files give JPEGs as bytes, for decoding on the GPU (``data.decode: gpu``).

    Returns:
        Whether any does (in-memory data has no files to read).
    """
    found = False
    for leaf in _leaves(dataset):
        if isinstance(leaf, ImageListDataset):
            leaf.encoded_split, found = split, True
    return found


def gives_encoded_jpegs(dataset: ClassificationDataset) -> bool:
    """Whether :func:`encode_jpegs` was applied (the loader then collates with ``gpu_decode.collate``)."""
    return any(getattr(leaf, "encoded_split", None) is not None for leaf in _leaves(dataset))


def exclude_replaced_samples(dataset: ClassificationDataset) -> ClassificationDataset:
    """Make evaluation leave out unreadable images instead of scoring their replacements.

    With ``on_bad_image: skip`` an unreadable file is replaced by the next readable sample; for training that
    is harmless, for metrics it would count that neighbour twice. After this call such a sample comes with
    :meth:`ClassificationDataset.excluded_target` (``-1``), which the evaluation drops. Applies through
    wrapper datasets to every dataset that reads files.

    Returns:
        ``dataset`` itself.
    """
    dataset.exclude_replaced = True
    for child in [getattr(dataset, "inner", None), *getattr(dataset, "parts", [])]:
        if isinstance(child, ClassificationDataset):
            exclude_replaced_samples(child)
    return dataset
