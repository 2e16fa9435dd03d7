"""Time ``dataset-doctor`` per 10k images, with one hashing process and with several, side by side.

Run: ``python benchmarks/dataset_doctor.py [--images 10000] [--size 64] [--workers 2]``. Writes small JPEG images
(smooth colour pictures of 10 classes, 80 % train / 20 % val) to a temporary folder, which is deleted afterwards,
and prints the wall time of the whole doctor run (scan, hash, group, write JSON and HTML) per 10k images, its CPU
time (which a busy machine inflates less than the wall time), the speed-up of the worker processes and the peak
resident memory of the main process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


def write_images(root: Path, count: int, size: int, classes: int = 10) -> None:
    """``root/{train,val}/<class>/<n>.jpg``: random pictures with structure at every scale the hashes look at
    (a few coarse blobs would make unrelated pictures look alike; JPEG compresses these like photos)."""
    rng = np.random.default_rng(0)
    for index in range(count):
        split = "val" if index % 5 == 0 else "train"
        folder = root / split / f"class_{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        side = max(2, size // 4)
        coarse = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
        pixels = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        pixels = np.clip(pixels + rng.integers(-10, 10, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the hashing workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(images: int, size: int, workers: int) -> None:
    from clsctl.analysis.doctor import dataset_doctor
    from clsctl.recipe import validate_recipe

    folder = Path(tempfile.mkdtemp(prefix="clsctl-doctor-bench-"))
    try:
        started = time.perf_counter()
        write_images(folder / "data", images, size)
        print(f"wrote {images} {size}x{size} JPEGs in {time.perf_counter() - started:.1f} s")
        recipe = validate_recipe({
            "model": {"name": "test_resnet"},
            "data": {"train": {"type": "image_folder", "root": str(folder / "data" / "train")},
                     "val": {"type": "image_folder", "root": str(folder / "data" / "val")}},
            "optim": {"type": "sgd", "lr": 0.1},
        })
        seconds = {}
        for count in (1, workers):
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            result = dataset_doctor(recipe, ("train", "val"), out=folder / f"doctor_{count}", num_process=count,
                                    show_progress=False)
            seconds[count] = time.perf_counter() - started
            per_10k = seconds[count] * 10_000 / images
            cpu_per_10k = (_cpu_seconds() - cpu_before) * 10_000 / images
            print(f"{count} hashing process(es): {seconds[count]:.1f} s total, {per_10k:.1f} s per 10k images "
                  f"(hashing pass {result.seconds:.1f} s; CPU time {cpu_per_10k:.1f} s per 10k images, workers "
                  f"included); findings {result.counts}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"speed-up of {workers} processes over 1: ratio {seconds[1] / seconds[workers]:.2f}x; "
              f"peak RSS of the main process {peak:.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="Images to generate.")
    parser.add_argument("--size", type=int, default=64, help="Side of each image in pixels.")
    parser.add_argument("--workers", type=int, default=2, help="Hashing processes of the parallel run.")
    args = parser.parse_args()
    main(args.images, args.size, args.workers)
