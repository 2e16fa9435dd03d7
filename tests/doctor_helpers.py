"""Image folders with planted problems for the dataset-doctor tests (importable as ``doctor_helpers``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import yaml

from helpers import tiny_recipe_dict, write_train_val

# (from class, to class, image number): five images moved to the wrong class folder
SWAPS = (("red", "green", 0), ("red", "blue", 1), ("green", "red", 2), ("blue", "red", 3), ("green", "blue", 4))


def clean_dataset(root: Path, epochs: int = 1) -> Path:
    """``root/data/{train,val}`` of three balanced colour classes and ``root/recipe.yaml``; returns the recipe."""
    write_train_val(root / "data", train_per_class=10, val_per_class=5)
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_dict(root / "data", root / "run", epochs=epochs)), encoding="utf-8")
    return recipe


def plant_problems(root: Path) -> dict[str, Path]:
    """Plant one of each problem in a :func:`clean_dataset`; returns the planted files by name."""
    from PIL import Image

    data = root / "data"
    planted = {"val_copy": data / "train" / "red" / "copied_from_val.png",
               "near_leak": data / "train" / "blue" / "val_resized.jpg",
               "near_dup": data / "train" / "green" / "3_resized.jpg",
               "corrupt": data / "train" / "red" / "corrupt.png",
               "wide": data / "train" / "blue" / "wide.png"}
    shutil.copy(data / "val" / "red" / "0.png", planted["val_copy"])
    with Image.open(data / "val" / "blue" / "1.png") as image:  # resized and re-encoded: bytes differ, looks alike
        image.resize((48, 48), Image.Resampling.BICUBIC).save(planted["near_leak"], quality=85)
    with Image.open(data / "train" / "green" / "3.png") as image:
        image.resize((40, 40), Image.Resampling.BICUBIC).save(planted["near_dup"], quality=80)
    planted["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 90, (32, 160, 3))
    pixels[..., 2] += 150
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(planted["wide"])
    for split in ("train", "val"):  # a class with 2 images
        (data / split / "yellow").mkdir()
        for index in range(2):
            pixels = rng.integers(0, 90, (32, 32, 3))
            pixels[..., :2] += 150
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(data / split / "yellow" / f"{index}.png")
    return planted


def swap_labels(root: Path) -> list[Path]:
    """Move the five :data:`SWAPS` images of ``train`` into another class's folder; returns their new paths."""
    moved = []
    for source, target, number in SWAPS:
        destination = root / "data" / "train" / target / f"swapped_{source}_{number}.png"
        shutil.move(root / "data" / "train" / source / f"{number}.png", destination)
        moved.append(destination)
    return moved
