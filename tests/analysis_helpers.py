"""Checks shared by the tests of the inspection tools (importable as ``analysis_helpers``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_png(path: Path) -> np.ndarray:
    """Pixels of a PNG as an ``H x W x 3`` uint8 array."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def assert_picture(path: Path, min_width: int = 16, min_height: int = 16) -> np.ndarray:
    """The PNG exists, has at least the given size and is not blank (more than a handful of distinct colours)."""
    assert path.is_file(), path
    pixels = read_png(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height, (width, height)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8, f"{path} looks blank"
    return pixels


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two pictures differ (in size or in any pixel)."""
    return a.shape != b.shape or bool((a != b).any())


def write_log(path: Path, epochs: int = 3, iters: int = 6, interval: int = 2, times: dict | None = None,
              loss_scale: float = 1.0) -> Path:
    """A metrics.jsonl like training writes: a train record every ``interval`` iterations, a val record per epoch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, step = [], 0
    for epoch in range(1, epochs + 1):
        for it in range(interval, iters + 1, interval):
            step += interval
            time = (times or {}).get((epoch, it), 0.1 * epoch)
            lines.append({"mode": "train", "epoch": epoch, "iter": it, "step": step, "lr": 0.1 / step,
                          "loss": loss_scale / step, "time": time, "data_time": 0.01, "img_per_s": 80.0})
        lines.append({"mode": "val", "epoch": epoch, "step": step, "accuracy/top1": 50.0 + 10 * epoch, "loss": 1.0})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path
