"""Shards for tests, and a training process that records which samples each epoch's stream yielded."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from helpers import write_image_folder


def write_shard_split(root: Path, split: str, per_class: int, per_shard: int, seed: int = 0) -> list[Path]:
    """Generated images of ``split`` written as shards of ``per_shard`` samples (about: sizes are in bytes).

    Returns:
        The shard files, in order.
    """
    from clsctl.data.write_shards import write_shards

    images = write_image_folder(root / "images" / split, per_class=per_class, seed=seed)
    one = sum(p.stat().st_size for p in images.rglob("*.png")) / (3 * per_class)
    size = int(per_shard * (one + 2048) + 1024)  # image + label members with their headers, per sample
    return write_shards(images, root / "shards" / split, shard_size=size, seed=seed).shards


def record_stream_ids(log: Path) -> None:
    """Make every StreamLoader append ``{"rank", "epoch", "train", "ids"}`` to ``log`` after each full pass."""
    from clsctl.data.shards import StreamLoader

    original = StreamLoader.__iter__

    def recording(self: StreamLoader):  # noqa: ANN202
        yield from original(self)
        plan = self.dataset.plan
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"rank": plan.rank, "epoch": self.sampler.epoch, "train": plan.train,
                                     "ids": self.last_ids}) + "\n")

    StreamLoader.__iter__ = recording  # type: ignore[method-assign]


if __name__ == "__main__":  # python shard_helpers.py RECIPE LOG: train (one process of torchrun-style run)
    record_stream_ids(Path(sys.argv[2]).with_suffix(f".{os.environ.get('RANK', '0')}.jsonl"))
    from clsctl.engine.loop import train
    from clsctl.recipe import load_recipe

    train(load_recipe(Path(sys.argv[1])), device="cpu", show_progress=False)
