"""``browse-dataset``: the images of a split as the pipeline sees them, with the class name on each."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clsctl.analysis._draw import caption, hstack, rescale, safe_name, save_png, to_rgb_array
from clsctl.errors import ClsctlError
from clsctl.recipe import Recipe

Mode = Literal["original", "transformed", "concat", "pipeline"]
MODES: tuple[str, ...] = ("original", "transformed", "concat", "pipeline")


@dataclass
class BrowseResult:
    """What :func:`browse_dataset` wrote."""

    files: list[Path]
    split: str
    total: int  # samples in the split


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pipeline_stages(image: Any, steps: list[Any], names: list[str], seed: int) -> list[tuple[str, np.ndarray]]:
    """The image before the pipeline and after each step, as ``(caption, RGB array)`` pairs.

    Args:
        image: Decoded PIL image.
        steps: Built transforms, applied in order.
        names: Caption of each step.
        seed: Seeds the random steps, so the same sample always gets the same augmentation.
    """
    _seed(seed)
    stages = [("original", to_rgb_array(image))]
    for step, name in zip(steps, names):
        image = step(image)
        stages.append((name, to_rgb_array(image)))
    return stages


def target_names(target: Any, classes: list[str]) -> str:
    """Class name of a single-label target, or the names of a multi-label target's positive classes."""
    if isinstance(target, int) or np.ndim(target) == 0:
        return classes[int(target)]
    values = np.asarray(target.tolist() if hasattr(target, "tolist") else target)
    return "+".join(classes[i] for i in np.flatnonzero(values == 1)) or "(no label)"


def browse_dataset(recipe: Recipe, out_dir: str | Path, *, split: str = "train", num: int = 10,
                   mode: str = "transformed", rescale_factor: float = 1.0, channel_order: str = "RGB",
                   seed: int = 0) -> BrowseResult:
    """Save one PNG per sample for the first ``num`` samples of a split, class name drawn above each.

    Args:
        recipe: Validated recipe.
        out_dir: Folder for the PNG files (``<index>_<class>.png``).
        split: ``train``, ``val`` or ``test``.
        num: Samples to show (all when larger than the split).
        mode: ``original`` (decoded file), ``transformed`` (after the split's pipeline), ``concat`` (both side by
            side) or ``pipeline`` (the image after every step, side by side).
        rescale_factor: Nearest-neighbour upscaling of every panel, to make small images (CIFAR, digits) visible.
        channel_order: ``RGB`` shows images as decoded; ``BGR`` swaps the red and blue channels (for data stored
            in BGR order).
        seed: Base seed of the random steps (sample ``i`` uses ``seed + i``).
    """
    from clsctl.data.datasets import build_dataset
    from clsctl.data.transforms import build_step
    from clsctl.engine.build import dataset_config, effective_pipeline

    if mode not in MODES:
        raise ClsctlError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    order = channel_order.upper()
    if order not in ("RGB", "BGR"):
        raise ClsctlError(f"channel order must be RGB or BGR, got '{channel_order}'")
    if rescale_factor <= 0:
        raise ClsctlError(f"rescale factor must be positive, got {rescale_factor}")
    dataset = build_dataset(dataset_config(recipe, split))
    config_steps = effective_pipeline(recipe, split)
    steps = [build_step(step) for step in config_steps]
    names = [step.type for step in config_steps]
    out = Path(out_dir)
    files = []
    for index, (image, target, path) in enumerate(_first_samples(dataset, num)):
        stages = pipeline_stages(image, steps, names, seed + index)
        if mode == "original":
            stages = stages[:1]
        elif mode == "transformed":
            stages = [("transformed", stages[-1][1])]
        elif mode == "concat":
            stages = [stages[0], ("transformed", stages[-1][1])]
        panels = []
        for name, array in stages:
            if order == "BGR":
                array = array[..., ::-1]
            array = rescale(np.ascontiguousarray(array), rescale_factor)
            panels.append(caption(array, name) if len(stages) > 1 else array)
        class_name = target_names(target, dataset.classes)
        picture = caption(hstack(panels), [f"{class_name}  ({Path(path).name})"])
        files.append(save_png(picture, out / f"{index:04d}_{safe_name(class_name)}.png"))
    return BrowseResult(files, split, _sample_count(dataset))


def _first_samples(dataset: Any, num: int) -> Any:
    """``(decoded image, target, file name)`` of the first ``num`` samples; a stream of shards is read from
    its first shard on (``shard.tar:key`` as the name)."""
    from clsctl.data.shards import ShardDataset

    if isinstance(dataset, ShardDataset):
        from PIL import Image

        for count, (image, label, name) in enumerate(dataset.iter_samples()):
            if count >= num:
                return
            if not isinstance(image, Image.Image):  # a decoded tensor: (3, H, W) uint8
                image = Image.fromarray(image.permute(1, 2, 0).numpy())
            yield image, label, name.rpartition("/")[2]
        return
    for index in range(min(num, len(dataset))):
        # Without a transform, an item is the decoded PIL image (files and in-memory data alike).
        image, target = dataset[index]
        yield image, target, str(dataset.samples[index][0])


def _sample_count(dataset: Any) -> int:
    counts = getattr(dataset, "counts", ())
    if counts is None:  # remote shards: unknown
        return getattr(dataset, "epoch_size", None) or 0
    return len(dataset)
