"""How much slower is ``clsctl.train`` per step than a minimal hand-written PyTorch loop?

Both train the same model on the same image folder (same transforms, batch size, optimizer and number of
steps) in one process, alternating, and each reports its time per step: the wall time of an epoch (data
loading included) divided by its steps, first epoch left out as warm-up. clsctl's time comes from its own
``metrics.jsonl`` (one record per epoch, whose ``time`` is the epoch's wall time per step); the minimal loop
is timed the same way around its ``for`` loop.

    python benchmarks/loop_overhead.py                      # CPU, test_resnet, batch 32
    python benchmarks/loop_overhead.py --model resnet18 --size 64 --device cuda --amp

The minimal loop runs twice: on clsctl's own dataset object (same decoder and transforms, so the ratio is the
loop's overhead alone) and on torchvision's ImageFolder with torchvision transforms (what a hand-written
script would use: Pillow decoding). Prints the times per step and the ratios (target: <= 1.05 on the CPU), for
the fastest epoch of each (the least disturbed by other work on a shared machine) and for the median epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def write_folder(root: Path, classes: int, per_class: int, size: int) -> None:
    """``root/<class>/<n>.png`` noise images whose dominant channel is the class."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 90, size=(size, size, 3))
            pixels[..., label % 3] += 150
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index}.png")


def bench_recipe(root: Path, work: Path, args: argparse.Namespace, steps_per_epoch: int) -> Any:
    """The recipe clsctl trains with (and whose dataset the same-data minimal loop reads)."""
    from clsctl.recipe import validate_recipe

    return validate_recipe({
        "model": {"name": args.model},
        "data": {"train": {"type": "image_folder", "root": str(root),
                           "pipeline": [{"type": "random_crop", "size": args.size, "padding": 2},
                                        {"type": "random_horizontal_flip"}]},
                 "loader": {"batch_size": args.batch, "num_workers": args.workers, "drop_last": True}},
        "optim": {"type": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"type": "cosine"},
        "runtime": {"epochs": args.epochs, "work_dir": str(work), "seed": 0, "log_interval": steps_per_epoch,
                    "checkpoint_interval": args.epochs, "amp": args.amp, "channels_last": args.amp,
                    "device": args.device},
    })


def clsctl_steps(root: Path, work: Path, args: argparse.Namespace, steps_per_epoch: int) -> list[float]:
    """Seconds per step of each epoch after the first, as clsctl's loop measured them."""
    from clsctl.engine.loop import train

    train(bench_recipe(root, work, args, steps_per_epoch), show_progress=False)
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    return [r["time"] for r in records if r["mode"] == "train"][1:]


def minimal_steps(root: Path, args: argparse.Namespace, steps_per_epoch: int, *, same_data: bool) -> list[float]:
    """The same training in the fewest lines PyTorch allows.

    ``same_data``: read clsctl's own dataset (its decoder and transforms), so the two differ by the loop
    alone; otherwise torchvision's ImageFolder and transforms, what a hand-written script would use.
    """
    from torchvision import datasets, transforms as T

    from clsctl.models import create_model, model_info

    if same_data:
        from clsctl.engine.build import build_split

        dataset = build_split(bench_recipe(root, root.parent / "unused", args, steps_per_epoch), "train")
    else:
        meta = model_info(args.model)
        transform = T.Compose([T.RandomCrop(args.size, padding=2), T.RandomHorizontalFlip(), T.ToTensor(),
                               T.Normalize(meta.mean, meta.std)])
        dataset = datasets.ImageFolder(str(root), transform=transform)
    device = torch.device(args.device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         drop_last=True, pin_memory=device.type == "cuda",
                                         persistent_workers=args.workers > 0)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=len(dataset.classes)).to(device)
    use_amp = args.amp and device.type == "cuda"
    if use_amp:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = torch.nn.CrossEntropyLoss()
    per_step = []
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        for images, targets in loader:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if use_amp:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        loss.item()  # wait for the device, as clsctl's end-of-epoch log does
        per_step.append((time.perf_counter() - start) / steps_per_epoch)
    return per_step[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--size", type=int, default=32, help="Image side.")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12, help="Steps per epoch.")
    parser.add_argument("--epochs", type=int, default=4, help="Epochs per run (the first is warm-up).")
    parser.add_argument("--rounds", type=int, default=4, help="Alternating runs of each loop.")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast + channels_last (CUDA).")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        per_class = -(-args.steps * args.batch // 3)
        write_folder(root, 3, per_class, args.size)
        steps_per_epoch = 3 * per_class // args.batch
        ours, same, torchvision = [], [], []
        for round_index in range(args.rounds):
            # Alternate so that drifting machine load hits every loop alike.
            same += minimal_steps(root, args, steps_per_epoch, same_data=True)
            ours += clsctl_steps(root, Path(tmp) / f"run{round_index}", args, steps_per_epoch)
            torchvision += minimal_steps(root, args, steps_per_epoch, same_data=False)
        print(f"model {args.model}, {args.size}px, batch {args.batch}, {steps_per_epoch} steps x "
              f"{args.epochs - 1} timed epochs x {args.rounds} rounds on {args.device} "
              f"({torch.get_num_threads()} threads)")
        # The fastest epoch is the least disturbed by other work on the machine; the median shows the spread.
        for baseline, theirs in (("minimal loop, clsctl's dataset (loop overhead alone)", same),
                                 ("minimal loop, torchvision ImageFolder (what a script would use)", torchvision)):
            print(f"vs {baseline}:")
            for label, pick in (("best epoch", min), ("median epoch", statistics.median)):
                mine_s, base_s = pick(ours), pick(theirs)
                print(f"  {label:>12}: minimal {1000 * base_s:7.2f} ms/step ({args.batch / base_s:7.1f} img/s)  "
                      f"clsctl.train {1000 * mine_s:7.2f} ms/step ({args.batch / mine_s:7.1f} img/s)  "
                      f"ratio {mine_s / base_s:.3f}x")


if __name__ == "__main__":
    main()
