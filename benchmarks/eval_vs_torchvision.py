"""``clsctl test`` against a hand-written torchvision evaluation loop, on the same JPEG folder and model.

Two measurements, side by side in one run, rounds alternating so a busy machine slows both alike:

1. **End to end** (img/s): ``clsctl.evaluate`` of a model with weights against what one writes with torchvision
   alone: ``ImageFolder`` (Pillow decode) with ``Resize``/``CenterCrop``/``ToTensor``/``Normalize``, a
   ``DataLoader`` of the same batch size and workers, the model under ``torch.no_grad()`` and top-1 counted.
2. **Input path per core** (img/s, ``num_workers=0``, one thread): only the images, decoded and prepared into
   normalised batches: clsctl's evaluation dataset (the one decode layer, the model's ``Preprocessing`` on uint8
   tensors, uint8 collation, one normalisation per batch) against ``ImageFolder`` + PIL transforms.

The images are scikit-image's real photographs (``chelsea``, ``coffee``, ``astronaut``, ...) at ImageNet-like
sizes (about 500 x 375, JPEG quality 90), cropped and flipped into distinct files.

    python benchmarks/eval_vs_torchvision.py --model resnet18 --images 256 --batch 32 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]


def write_folder(root: Path, images: int) -> None:
    """``root/<wnid>/<n>.jpg``: crops of scikit-image's photographs, resized to about 500 x 375."""
    from skimage import data

    photos = [getattr(data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field")]
    photos = [p if p.ndim == 3 else np.stack([p] * 3, -1) for p in photos]
    rng = np.random.default_rng(0)
    for index in range(images):
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        top, left = int(rng.integers(0, height // 6)), int(rng.integers(0, width // 6))
        crop = photo[top: top + height * 5 // 6, left: left + width * 5 // 6, :3]
        if index % 2:
            crop = crop[:, ::-1]
        folder = root / WNIDS[index % len(WNIDS)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).resize((500, 375), Image.BICUBIC).save(folder / f"{index}.jpg",
                                                                                           quality=90)


def torchvision_transform(meta: object) -> object:
    from torchvision import transforms as T

    return T.Compose([T.Resize(meta.eval_resize_size, interpolation=T.InterpolationMode(meta.interpolation)),
                      T.CenterCrop(meta.input_size), T.ToTensor(), T.Normalize(meta.mean, meta.std)])


def hand_written(model: torch.nn.Module, root: Path, meta: object, batch: int, workers: int) -> float:
    """img/s of a plain torchvision evaluation loop (top-1 computed, as a real one would)."""
    from torchvision import datasets

    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), torchvision_transform(meta)),
                                         batch_size=batch, num_workers=workers)
    start = time.perf_counter()
    correct = count = 0
    with torch.no_grad():
        for images, targets in loader:
            correct += int((model(images).argmax(1) == targets).sum())
            count += len(targets)
    return count / (time.perf_counter() - start)


def input_path_torchvision(root: Path, meta: object, batch: int) -> float:
    """img/s of ImageFolder + PIL transforms into normalised batches, in this process."""
    from torchvision import datasets

    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), torchvision_transform(meta)),
                                         batch_size=batch, num_workers=0)
    start = time.perf_counter()
    count = sum(len(images) for images, _ in loader)
    return count / (time.perf_counter() - start)


def input_path_clsctl(root: Path, loaded: object, batch: int) -> float:
    """img/s of clsctl's evaluation input path into normalised batches, in this process."""
    from clsctl.data.datasets import build_dataset
    from clsctl.data.loaders import build_eval_loader
    from clsctl.recipe import schema as S

    config = S.DataConfig.model_validate({"test": {"type": "image_folder", "root": str(root)}})
    dataset = build_dataset(config.test, loaded.preprocessing.transform("uint8"))
    loader = build_eval_loader(dataset, S.LoaderConfig(batch_size=batch, num_workers=0))
    normalise, cpu = loaded.preprocessing.device_input(), torch.device("cpu")
    start = time.perf_counter()
    count = 0
    for images, targets in loader:
        count += len(normalise(images, targets, cpu)[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-end-to-end", action="store_true", help="Measure the input path only.")
    args = parser.parse_args()

    import clsctl
    from clsctl.data.decode import backend_name
    from clsctl.engine.loading import load_model
    from clsctl.models import create_model, model_info

    meta = model_info(args.model)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "val"
        write_folder(root, args.images)
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=1000).eval()
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        loaded = load_model(args.model, weights=weights, num_classes=1000)
        ours, theirs, ours_in, theirs_in = [], [], [], []
        for _ in range(args.rounds):
            if not args.skip_end_to_end:
                torch.set_num_threads(threads)
                result = clsctl.evaluate(model=args.model, weights=weights, num_classes=1000, data_root=root,
                                         batch_size=args.batch, overrides=[f"data.loader.num_workers={args.workers}"],
                                         device="cpu", show_progress=False)
                ours.append(result.throughput)
                theirs.append(hand_written(model, root, meta, args.batch, args.workers))
            torch.set_num_threads(1)
            ours_in.append(input_path_clsctl(root, loaded, args.batch))
            theirs_in.append(input_path_torchvision(root, meta, args.batch))
    print(f"{args.model}: {args.images} JPEGs of 500x375, batch {args.batch}, best of {args.rounds} rounds on the "
          f"cpu; clsctl decodes with {backend_name()}")
    if ours:
        print(f"end to end ({args.workers} loader workers, {threads} threads):")
        print(f"  clsctl test                      {max(ours):8.1f} img/s")
        print(f"  hand-written torchvision loop    {max(theirs):8.1f} img/s")
        print(f"  ratio {max(ours) / max(theirs):.2f}x")
    print("input path per core (num_workers=0, 1 thread):")
    print(f"  clsctl evaluation input          {max(ours_in):8.1f} img/s")
    print(f"  ImageFolder + PIL transforms     {max(theirs_in):8.1f} img/s")
    print(f"  ratio {max(ours_in) / max(theirs_in):.2f}x")


if __name__ == "__main__":
    main()
