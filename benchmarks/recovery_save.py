"""Time one recovery save (``runtime.recovery_interval``): the full training state written atomically, as the
loop writes it, for the quickstart model and for ResNet-50, and what that costs at the default interval.

    python benchmarks/recovery_save.py [--folder DIR] [--repeats N]

The folder should be on the disk runs are written to (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from clsctl.engine.checkpoint import save_checkpoint
from clsctl.engine.loop import rng_state
from clsctl.models import create_model
from clsctl.recipe.schema import duration_seconds


def training_state(name: str, num_classes: int, size: int) -> dict:
    """What a recovery file holds: weights, SGD momentum buffers (after one step), RNG states, position."""
    model = create_model(name, num_classes=num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model(torch.randn(2, 3, size, size)).sum().backward()
    optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": {"step": 1},
            "scaler": {}, "epoch": 0, "position": 1, "rng": rng_state(), "recipe": {}, "class_names": [],
            "preprocessing": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    interval = duration_seconds("10m")
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        print(f"{'model':16s} {'file MiB':>9s} {'ms / save':>10s} {'% of a 10 min interval':>23s}")
        for name, classes, size in (("resnet20_cifar", 10, 32), ("resnet50", 1000, 64)):
            state = training_state(name, classes, size)
            path = Path(folder) / "recovery.pt"
            save_checkpoint(state, path)  # warm-up (file system caches)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                save_checkpoint(state, path)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            print(f"{name:16s} {path.stat().st_size / 2**20:9.1f} {median * 1000:10.1f} "
                  f"{100 * median / interval:23.3f}")


if __name__ == "__main__":
    main()
