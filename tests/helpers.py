"""Test helpers shared by every test module (importable as ``helpers``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np

CLASSES = ("red", "green", "blue")


def write_image_folder(root: Path, per_class: int = 6, size: int = 32, seed: int = 0) -> Path:
    """``root/<class>/<n>.png``: noisy 32x32 images whose dominant colour is the class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 90, size=(size, size, 3))
            pixels[..., label] += 150
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index}.png")
    return root



def write_train_val(root: Path, train_per_class: int, val_per_class: int) -> Path:
    """``root/train`` and ``root/val`` image folders (seeds 1 and 2, so the splits differ); returns ``root``."""
    write_image_folder(root / "train", per_class=train_per_class, seed=1)
    write_image_folder(root / "val", per_class=val_per_class, seed=2)
    return root

def tiny_recipe_dict(data_root: Path, work_dir: Path, **runtime: object) -> dict:
    """A recipe for ``test_resnet`` on ``data_root`` that trains in a second or two."""
    return {
        "model": {"name": "test_resnet"},
        "data": {
            "train": {"type": "image_folder", "root": str(data_root / "train"),
                      "pipeline": [{"type": "random_crop", "size": 32, "padding": 2},
                                   {"type": "random_horizontal_flip", "prob": 0.5}]},
            "val": {"type": "image_folder", "root": str(data_root / "val"), "pipeline": []},
            "loader": {"batch_size": 8, "num_workers": 0},
        },
        "optim": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"type": "cosine", "warmup_epochs": 1},
        "runtime": {"epochs": 2, "work_dir": str(work_dir), "seed": 0, "log_interval": 1, **runtime},
    }


def allow_ctrl_c() -> None:
    """``preexec_fn`` for a child that a test sends SIGINT: give the signal its default action back.

    A job started in the background (``nohup``, ``cmd &`` in a script, some CI runners) ignores SIGINT, and its
    children inherit that; clsctl rightly keeps an ignored SIGINT ignored, so the test would wait in vain.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)

