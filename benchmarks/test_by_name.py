"""Throughput of ``clsctl.evaluate(model=NAME, weights=F, data_root=D)`` against a hand-written loop.

The hand-written loop is what one would write with torchvision alone: ``ImageFolder`` with the same resize,
centre crop and normalisation, a ``DataLoader`` of the same batch size and workers, and the model under
``torch.no_grad()``. Both read the same generated JPEG folder; rounds alternate so a busy machine slows both
alike. Prints img/s of each and their ratio (clsctl / hand-written; 1.0 means no overhead).

    python benchmarks/test_by_name.py --model resnet18 --images 64 --batch 16 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_folder(root: Path, images: int) -> None:
    """``root/<wnid>/<n>.jpg``: 300x400 noise JPEGs in four ImageNet classes."""
    rng = np.random.default_rng(0)
    wnids = ["n01440764", "n01443537", "n01484850", "n01491361"]
    for index in range(images):
        folder = root / wnids[index % len(wnids)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / f"{index}.jpg", quality=90)


def hand_written(model: torch.nn.Module, root: Path, meta, batch: int, workers: int) -> float:
    """img/s of a plain torchvision evaluation loop (top-1 computed, as a real one would)."""
    from torchvision import datasets, transforms as T

    transform = T.Compose([T.Resize(meta.eval_resize_size, interpolation=T.InterpolationMode(meta.interpolation)),
                           T.CenterCrop(meta.input_size), T.ToTensor(), T.Normalize(meta.mean, meta.std)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), transform), batch_size=batch,
                                         num_workers=workers)
    start = time.perf_counter()
    correct = count = 0
    with torch.no_grad():
        for images, targets in loader:
            correct += int((model(images).argmax(1) == targets).sum())
            count += len(targets)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import clsctl
    from clsctl.models import create_model, model_info

    meta = model_info(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "val"
        write_folder(root, args.images)
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=1000).eval()
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        ours, theirs = [], []
        for _ in range(args.rounds):
            result = clsctl.evaluate(model=args.model, weights=weights, num_classes=1000, data_root=root,
                                     batch_size=args.batch,
                                     overrides=[f"data.loader.num_workers={args.workers}"], device="cpu",
                                     show_progress=False)
            ours.append(result.throughput)
            theirs.append(hand_written(model, root, meta, args.batch, args.workers))
    best_ours, best_theirs = max(ours), max(theirs)
    print(f"{args.model}: {args.images} images, batch {args.batch}, {args.workers} loader workers, "
          f"{torch.get_num_threads()} threads, best of {args.rounds} rounds on cpu")
    print(f"clsctl test by name  {best_ours:8.2f} img/s")
    print(f"hand-written loop    {best_theirs:8.2f} img/s")
    print(f"ratio {best_ours / best_theirs:.2f}x")


if __name__ == "__main__":
    main()
