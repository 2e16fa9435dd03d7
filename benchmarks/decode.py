"""clsctl's one decode layer (file -> upright ``3 x H x W`` uint8 RGB tensor, header check included) against
``PIL.Image.open(path).convert("RGB")``, what torchvision's ImageFolder does per image.

Run: ``python benchmarks/decode.py``. Writes test images to a temporary folder, times each decoder in
interleaved rounds (so machine load affects both alike) and prints the best time per image and the ratio
(``speed-up`` > 1: clsctl is faster). ``clsctl`` is whichever backend this machine has (TorchCodec where
installed, else torchvision.io); the backend is printed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _test_image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image with mild noise: compresses like a photo, unlike pure noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.int16)
    return np.clip(smooth + rng.integers(-8, 8, smooth.shape), 0, 255).astype(np.uint8)


def _time(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def main(rounds: int = 7, number: int | None = None) -> None:
    """Print the best time per image of each decoder.

    Args:
        rounds: Interleaved timing rounds per decoder.
        number: Decodes per round (default: 1000 for 32 px images, 200 for 224 px).
    """
    import torch

    from clsctl.data.decode import backend_name, decode_file

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="clsctl-decode-"))
    print(f"clsctl decodes with {backend_name()}")
    print(f"{'image':14s} {'pillow us':>10s} {'clsctl us':>10s} {'speed-up':>9s}")
    for size in (32, 224):
        pixels = _test_image(size)
        for ext in ("png", "jpg"):
            path = folder / f"{size}.{ext}"
            Image.fromarray(pixels).save(path, **({"quality": 90} if ext == "jpg" else {}))
            count = number or (1000 if size == 32 else 200)
            best = {"pil": float("inf"), "clsctl": float("inf")}
            for _ in range(rounds):
                best["pil"] = min(best["pil"], _time(lambda: Image.open(path).convert("RGB"), count))
                best["clsctl"] = min(best["clsctl"], _time(lambda: decode_file(path), count))
            print(f"{size}px {ext:9s} {best['pil'] * 1e6:10.1f} {best['clsctl'] * 1e6:10.1f} "
                  f"{best['pil'] / best['clsctl']:8.2f}x")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="Interleaved timing rounds per decoder.")
    parser.add_argument("--number", type=int, default=None, help="Decodes per round (default 1000 / 200).")
    options = parser.parse_args()
    main(options.rounds, options.number)
