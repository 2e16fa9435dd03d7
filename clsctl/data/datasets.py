"""Datasets: a list of samples with class names, read from image files or from arrays in memory.

Every dataset here (and every wrapper in :mod:`clsctl.data.wrappers`) has ``.samples`` (``(path, target)``
pairs; a target is a class index, or a tuple of indices for multi-label data), ``.classes``, ``__len__`` and
``__getitem__`` taking an index or an ``(index, seed)`` key; the seed makes augmentation of that sample
deterministic whatever the worker process or the resume point.

:func:`build_dataset` turns a recipe entry into one; the readers of each file layout live in
:mod:`clsctl.data.layouts` and :mod:`clsctl.data.torchvision_sets`.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from clsctl.data.decode import DECODE_ERRORS, decode_image, decode_tensor
from clsctl.errors import DataError
from clsctl.readers import read_text
from clsctl.recipe import schema as S

logger = logging.getLogger("clsctl")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

OnBadImage = Literal["skip", "fail"]
Target = int | tuple[int, ...]

# How many following samples a bad image may be replaced by before giving up (a folder of broken files
# is a data problem to report, not to skip silently).
MAX_REPLACEMENTS = 50


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file fully, as RGB (the faster of OpenCV and Pillow; see :mod:`clsctl.data.decode`)."""
    return decode_image(path)


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

    Images are decoded to ``(3, H, W)`` uint8 tensors for training pipelines, to RGB PIL images for full CPU
    pipelines (``takes_pil``: evaluation keeps Pillow's resampling) and without a transform (what tools that
    show or step through images take).

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
        image, loaded = self._load(index, pil=self.transform is None or getattr(self.transform, "takes_pil", False))
        if self.transform is not None:
            if seed is not None:
                seed_sample(seed, torch_only=getattr(self.transform, "torch_rng_only", False))
            image = self.transform(image)
        if loaded != index and self.exclude_replaced:
            # Evaluation: the stand-in keeps the batch shape, but its target tells the metrics to skip it, so
            # an unreadable file neither counts twice a neighbour nor counts as a mistake.
            return image, self.excluded_target()
        return image, self.encode_target(loaded)


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
        from clsctl.data.decode import is_jpeg, read_bytes
        from clsctl.data.gpu_decode import EncodedImage, jpeg_complete

        path = self.samples[index][0]
        try:
            data = read_bytes(path)
        except OSError:
            return None
        if len(data) > 4 and is_jpeg(data.numpy()) and jpeg_complete(data):
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
                return (decode_image(path) if pil else decode_tensor(path)), current
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


def read_class_names(spec: list[str] | str, base: Path) -> list[str]:
    """Class names from a list or from a text file with one name per line."""
    if isinstance(spec, list):
        return spec
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    return [line.strip() for line in read_text(path, "classes file", DataError).splitlines() if line.strip()]


def read_annotation_file(root: Path, ann_file: Path, classes: Sequence[str] | None) -> list[tuple[str, int]]:
    """Read ``relative/path label`` lines; every label must index ``classes`` (when given)."""
    samples, problems = [], []
    for number, line in enumerate(read_text(ann_file, "annotation file", DataError).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            problems.append(f"{ann_file}:{number}: expected 'path label', got {line!r}")
            continue
        label = int(parts[1])
        if label < 0 or (classes is not None and label >= len(classes)):
            count = "" if classes is None else f" for {len(classes)} classes"
            problems.append(f"{ann_file}:{number}: label {label} is out of range{count}")
            continue
        samples.append((str(root / parts[0]), label))
    if problems:
        raise DataError(f"{ann_file}: {len(problems)} bad line(s)", details=problems[:20])
    if not samples:
        raise DataError(f"{ann_file}: no samples")
    return samples


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
        return wrappers.build_wrapper(config, transform, base, on_bad_image=on_bad_image)
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
