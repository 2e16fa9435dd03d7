"""Images per second per CPU core of the training input pipeline, clsctl against torchvision, in one run.

On generated ImageNet-like JPEGs (500x375, quality 90) three loaders produce batches of the ImageNet training
pipeline (RandomResizedCrop 224, horizontal flip, normalisation):

- ``clsctl``: clsctl's dataset and loader (torchvision.io decoding, v2 transforms on uint8 tensors, per-sample
  seeds), uint8 batches; normalisation happens on the device (``clsctl.data.device``), so it is not a CPU
  core's work. The ``clsctl + CPU normalise`` row adds that step run on the CPU, for a like-for-like view.
- ``torchvision ImageFolder + PIL``: ``torchvision.datasets.ImageFolder`` with ``transforms.RandomResizedCrop``,
  ``RandomHorizontalFlip``, ``ToTensor`` and ``Normalize`` (the classic reference pipeline).
- ``decode_jpeg + v2``: a bare loop: read the bytes, ``torchvision.io.decode_jpeg``, ``transforms.v2``
  RandomResizedCrop + flip on the uint8 tensor (the floor clsctl's extra work is measured against).

Each contestant runs in the main process (``num_workers=0``) with one torch thread, and again with ``--workers N``
worker processes. "per core" is images per CPU-second, counted with ``getrusage`` over the process and its
joined workers: what one core delivers, unaffected by other work on a shared machine (``img/s`` is the wall
clock, which is). Rounds alternate between contestants and the best round counts. Prints a table and the
per-core ratios to torchvision ImageFolder + PIL.

    python benchmarks/pipeline.py                   # 384 images, 3 rounds, also with 2 workers
    python benchmarks/pipeline.py --images 64 --rounds 1 --workers 0    # a quick check
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo_like(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour regions with fine noise: compresses (and decodes) like a photo, unlike pure noise."""
    coarse = Image.fromarray(rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    return np.clip(smooth + rng.integers(-10, 11, smooth.shape), 0, 255).astype(np.uint8)


def write_jpegs(root: Path, count: int, classes: int = 4, size: tuple[int, int] = (500, 375)) -> Path:
    """``root/c<k>/<n>.jpg``: ``count`` JPEGs of ``size`` (width, height) at quality 90."""
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"c{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_like(*size, rng)).save(folder / f"{index}.jpg", quality=90)
    return root


class BareJpegDataset(torch.utils.data.Dataset):
    """Read, ``decode_jpeg``, v2 transforms on the uint8 tensor: nothing else."""

    def __init__(self, files: list[Path], transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from torchvision.io import decode_jpeg, read_file

        return self.transform(decode_jpeg(read_file(str(self.files[index])))), 0


def loaders(root: Path, batch: int, workers: int, size: int) -> dict[str, tuple[Iterable, Callable[[Any], Any]]]:
    """Each contestant: its DataLoader and what the main process does with a batch."""
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import transforms as T
    from torchvision.transforms import v2

    from clsctl.data.datasets import build_dataset
    from clsctl.data.device import DeviceInput
    from clsctl.data.loaders import build_loader
    from clsctl.data.preprocessing import validate_steps
    from clsctl.data.transforms import build_pipeline
    from clsctl.recipe import schema as S
    from pydantic import TypeAdapter

    common: dict[str, Any] = {"batch_size": batch, "num_workers": workers}
    if workers:
        common.update(persistent_workers=False, prefetch_factor=4)
    steps = validate_steps([{"type": "random_resized_crop", "size": size},
                            {"type": "random_horizontal_flip"}])
    config = TypeAdapter(S.Dataset).validate_python({"type": "image_folder", "root": str(root)})
    dataset = build_dataset(config, build_pipeline(steps, MEAN, STD, output="uint8"))
    loader_config = S.LoaderConfig(batch_size=batch, num_workers=workers, persistent_workers=False)
    clsctl_loader = build_loader(dataset, loader_config, train=True, seed=0)
    device_input = DeviceInput(MEAN, STD)
    cpu = torch.device("cpu")

    reference = torchvision.datasets.ImageFolder(str(root), transform=T.Compose([
        T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]))
    bare = BareJpegDataset(sorted(root.rglob("*.jpg")), v2.Compose([v2.RandomResizedCrop(size, antialias=True),
                                                                     v2.RandomHorizontalFlip()]))

    def nothing(images: Any) -> Any:
        return images

    def normalise_on_cpu(images: torch.Tensor) -> torch.Tensor:
        return device_input(images, None, cpu)[0]

    return {
        "clsctl": (clsctl_loader, nothing),
        "clsctl + CPU normalise": (clsctl_loader, normalise_on_cpu),
        "torchvision ImageFolder + PIL": (DataLoader(reference, shuffle=True, **common), nothing),
        "decode_jpeg + v2": (DataLoader(bare, shuffle=True, **common), nothing),
    }


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (loader workers, once joined)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def images_per_second(loader: Iterable, step: Callable[[Any], Any]) -> tuple[float, float]:
    """One pass over ``loader``: images per wall-clock second, and per CPU-second (all processes)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    count = 0
    for images, _ in loader:
        step(images)
        count += len(images)
    del loader  # (a DataLoader iterator joins its workers when exhausted; their CPU time is counted by now)
    return count / (time.perf_counter() - wall), count / (cpu_seconds() - cpu)


def measure(root: Path, batch: int, workers: int, size: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Best images per second (wall) and per CPU-second of each contestant over interleaved rounds (after one
    warm-up pass each)."""
    contestants = loaders(root, batch, workers, size)
    best = {name: (0.0, 0.0) for name in contestants}
    for name, (loader, step) in contestants.items():  # warm-up: page cache, lazy imports, first allocations
        images_per_second(loader, step)
    for _ in range(rounds):
        for name, (loader, step) in contestants.items():
            wall, per_cpu = images_per_second(loader, step)
            best[name] = (max(best[name][0], wall), max(best[name][1], per_cpu))
    return best


def report(title: str, best: dict[str, tuple[float, float]]) -> None:
    """One table: img/s (wall), img/s per CPU-second, and its ratio to torchvision ImageFolder + PIL."""
    reference = best["torchvision ImageFolder + PIL"][1]
    print(title)
    print(f"  {'pipeline':32s} {'img/s':>8s} {'per core':>9s} {'vs ImageFolder+PIL':>19s}")
    for name, (wall, per_cpu) in best.items():
        print(f"  {name:32s} {wall:8.0f} {per_cpu:9.0f} {per_cpu / reference:18.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=384, help="Generated JPEGs (500x375, quality 90).")
    parser.add_argument("--rounds", type=int, default=3, help="Timed passes per contestant (best counts).")
    parser.add_argument("--batch", type=int, default=64, help="Batch size.")
    parser.add_argument("--size", type=int, default=224, help="Crop size.")
    parser.add_argument("--workers", type=int, default=2, help="Also measure with this many loader workers "
                                                               "(0: only the single-core run).")
    parser.add_argument("--jpeg-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"),
                        help="Width and height of the generated JPEGs.")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core: the per-core figure of a loader worker (workers also use one thread)
    with tempfile.TemporaryDirectory(prefix="clsctl-pipeline-") as folder:
        root = write_jpegs(Path(folder) / "jpegs", args.images, size=tuple(args.jpeg_size))
        print(f"{args.images} JPEGs {args.jpeg_size[0]}x{args.jpeg_size[1]} q90 -> RandomResizedCrop {args.size}, "
              f"flip, normalise; batch {args.batch}; best of {args.rounds} rounds", flush=True)
        report("one core (num_workers=0, 1 thread):", measure(root, args.batch, 0, args.size, args.rounds))
        if args.workers:
            report(f"{args.workers} loader workers:", measure(root, args.batch, args.workers, args.size, args.rounds))


if __name__ == "__main__":
    main()
