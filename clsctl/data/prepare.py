"""``clsctl prepare-data``: write public datasets out as ``train/<class>/*.png`` and ``val/<class>/*.png`` trees."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clsctl.errors import ClsctlError

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class PreparedData:
    """What was written."""

    root: Path
    classes: list[str]
    counts: dict[str, int]  # split -> number of images


def _write_split(root: Path, split: str, images: Iterable[np.ndarray], labels: Iterable[int], classes: list[str],
                 progress: Callable[[int], None] | None = None) -> int:
    from PIL import Image

    for name in classes:
        (root / split / name).mkdir(parents=True, exist_ok=True)
    count = 0
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / split / classes[int(label)] / f"{index:05d}.png")
        count += 1
        if progress is not None:
            progress(1)
    return count


def digits_arrays(seed: int = 0, val_fraction: float = 0.2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 1,797 8x8 digit scans as uint8 images, with a fixed stratified train/val split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # pixel values are 0..16
    train_x, val_x, train_y, val_y = train_test_split(
        images, digits.target, test_size=val_fraction, random_state=seed, stratify=digits.target
    )
    return {"train": (train_x, train_y), "val": (val_x, val_y)}


def _torchvision_arrays(name: str, download_root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    from torchvision import datasets

    factory = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "mnist": datasets.MNIST,
               "fashion-mnist": datasets.FashionMNIST}[name]
    splits = {}
    try:
        for split, train in (("train", True), ("val", False)):
            ds = factory(str(download_root), train=train, download=True)
            data = ds.data if isinstance(ds.data, np.ndarray) else ds.data.numpy()
            splits[split] = (data, np.asarray(ds.targets))
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise ClsctlError(
            f"could not download {name} ({exc}). This needs internet access; on a machine that has it run "
            f"'clsctl prepare-data {name} DIR' and copy DIR here, or put torchvision's {name} files in "
            f"{download_root} and run this again"
        ) from exc
    classes = [c.replace("/", "_").replace(" ", "_") for c in ds.classes]
    return splits, classes


def prepare_data(name: str, out_dir: str | Path, *, download_root: str | Path | None = None, seed: int = 0,
                 progress: Callable[[int, int], Callable[[int], None]] | None = None) -> PreparedData:
    """Write a public dataset as an image-folder tree under ``out_dir``.

    Args:
        name: One of :data:`DATASETS`.
        out_dir: Destination; gets ``train/`` and ``val/``.
        download_root: Where torchvision keeps its downloads (default: ``out_dir/.download``).
        seed: Seed of the digits train/val split.
        progress: ``progress(split_index, total) -> advance`` factory used to report written images.
    """
    out = Path(out_dir)
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        from clsctl.registry import unknown_name_message

        raise ClsctlError(unknown_name_message("dataset", name, list(DATASETS)))
    if key == "digits":
        splits = digits_arrays(seed)
        classes = [str(i) for i in range(10)]
    else:
        splits, classes = _torchvision_arrays(key, Path(download_root) if download_root else out / ".download")
    counts = {}
    for split, (images, labels) in splits.items():
        advance = progress(len(counts), len(images)) if progress else None
        counts[split] = _write_split(out, split, images, labels, classes, advance)
    return PreparedData(out, classes, counts)
