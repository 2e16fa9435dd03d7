"""Datasets: image folders and annotation files, read into one list-of-samples dataset."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from clsctl.errors import DataError
from clsctl.recipe import schema as S

logger = logging.getLogger("clsctl")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB, decoding it fully (so broken files fail here, not later)."""
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


class ImageListDataset(Dataset):
    """Samples ``(path, label)`` with class names; items are ``(image tensor, label)``.

    An index may also be ``(index, seed)``: the transform then runs under that seed, which makes augmentation
    independent of worker processes and of where training was resumed.

    Args:
        samples: Image paths with integer labels.
        classes: Class names; ``classes[label]`` names a sample's class.
        transform: Callable applied to the PIL image.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str],
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        """Label of every sample, in order."""
        return [label for _, label in self.samples]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, label = self.samples[index]
        try:
            image = load_image(path)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc
        if self.transform is not None:
            if seed is not None:
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed % 2**32)
            image = self.transform(image)
        return image, label


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
    if not path.is_file():
        raise DataError(f"classes file not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_annotation_file(root: Path, ann_file: Path, classes: Sequence[str]) -> list[tuple[str, int]]:
    """Read ``relative/path label`` lines; every label must index ``classes``."""
    if not ann_file.is_file():
        raise DataError(f"annotation file not found: {ann_file}")
    samples, problems = [], []
    for number, line in enumerate(ann_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            problems.append(f"{ann_file}:{number}: expected 'path label', got {line!r}")
            continue
        label = int(parts[1])
        if not 0 <= label < len(classes):
            problems.append(f"{ann_file}:{number}: label {label} is out of range for {len(classes)} classes")
            continue
        samples.append((str(root / parts[0]), label))
    if problems:
        raise DataError(f"{ann_file}: {len(problems)} bad line(s)", details=problems[:20])
    if not samples:
        raise DataError(f"{ann_file}: no samples")
    return samples


def build_dataset(config: S.Dataset, transform: Callable | None = None, base_dir: Path | None = None) -> ImageListDataset:
    """Build the dataset a recipe's ``data.<split>`` entry describes.

    Args:
        config: The validated dataset entry.
        transform: Applied to each PIL image.
        base_dir: Folder relative paths are resolved against (default: the working directory).
    """
    base = base_dir or Path.cwd()
    root = Path(config.root) if Path(config.root).is_absolute() else base / config.root
    if isinstance(config, S.ImageFolderDataset):
        samples, classes = scan_image_folder(root, config.classes)
    elif isinstance(config, S.AnnotationFileDataset):
        classes = read_class_names(config.classes, base)
        ann = Path(config.ann_file) if Path(config.ann_file).is_absolute() else base / config.ann_file
        samples = read_annotation_file(root, ann, classes)
    else:
        raise TypeError(f"no builder for dataset {type(config).__name__}")
    return ImageListDataset(samples, classes, transform)
