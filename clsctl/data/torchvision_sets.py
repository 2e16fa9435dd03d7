"""CIFAR-10/100, MNIST and Fashion-MNIST through torchvision's readers, held in memory as arrays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from clsctl.data.dataset_base import ArrayImageDataset
from clsctl.errors import DataError
from clsctl.recipe import schema as S

# What torchvision expects under ``root`` (shown when the files are missing and cannot be downloaded).
EXPECTED_FILES = {
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) from cifar-10-python.tar.gz",
    "cifar100": "cifar-100-python/ (train, test, meta) from cifar-100-python.tar.gz",
    "mnist": "MNIST/raw/ (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*-ubyte, unpacked)",
    "fashion_mnist": "FashionMNIST/raw/ (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*-ubyte, unpacked)",
}


def _factory(name: str) -> type:
    from torchvision import datasets

    return {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "mnist": datasets.MNIST,
            "fashion_mnist": datasets.FashionMNIST}[name]


def build_torchvision_dataset(config: S.TorchvisionDataset, transform: Callable | None,
                              base: Path) -> ArrayImageDataset:
    """Read (and, when allowed and missing, download) a torchvision dataset into an in-memory dataset.

    Raises:
        DataError: The files are missing and cannot be downloaded (offline, or ``download: false``); the
            message says which files to put where.
    """
    root = Path(config.root) if Path(config.root).is_absolute() else base / config.root
    cls = _factory(config.type)
    train = config.split == "train"
    try:
        data = cls(str(root), train=train, download=False)
    except RuntimeError as missing:  # torchvision: "Dataset not found or corrupted"
        if not config.download:
            raise DataError(f"{config.type} not found in {root}: expected {EXPECTED_FILES[config.type]}; "
                            f"set download: true to fetch it") from missing
        try:
            data = cls(str(root), train=train, download=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; torchvision wraps some in RuntimeError
            raise DataError(f"cannot download {config.type} into {root} ({exc}); on a machine without internet, "
                            f"copy {EXPECTED_FILES[config.type]} there") from exc
    images = np.asarray(data.data)
    labels = [int(y) for y in data.targets]
    return ArrayImageDataset(images, labels, list(data.classes), transform, name=f"{config.type}/{config.split}")
