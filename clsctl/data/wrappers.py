"""Dataset wrappers: repeat, concat, class-balanced (repeat-factor sampling) and K-fold.

A wrapper is itself a dataset with ``.samples``, ``.classes`` and ``(index, seed)`` keys: it maps its indices
to the inner dataset's and passes the seed through, so a repeated sample still gets its own augmentation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from clsctl.data.dataset_base import ClassificationDataset, OnBadImage
from clsctl.errors import DataError
from clsctl.recipe import schema as S

WRAPPER_CONFIGS = (S.RepeatDataset, S.ConcatDataset, S.ClassBalancedDataset, S.KFoldDataset)


class IndexedDataset(ClassificationDataset):
    """A view of ``inner`` through a list of its indices (repeats allowed).

    Args:
        inner: The wrapped dataset.
        indices: ``self[i]`` is ``inner[indices[i]]``.
    """

    def __init__(self, inner: ClassificationDataset, indices: Sequence[int]) -> None:
        self.inner = inner
        self.indices = list(indices)
        super().__init__([inner.samples[i] for i in self.indices], inner.classes, None,
                         multi_label=inner.multi_label)

    @property
    def bad_image_count(self) -> int:
        return self.inner.bad_image_count

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        if isinstance(key, tuple):
            return self.inner[(self.indices[key[0]], key[1])]
        return self.inner[self.indices[key]]


class ConcatenatedDataset(ClassificationDataset):
    """Datasets with the same classes, one after the other."""

    def __init__(self, parts: Sequence[ClassificationDataset]) -> None:
        first = parts[0]
        for part in parts[1:]:
            if part.classes != first.classes:
                raise DataError(f"concat: datasets have different classes ({first.classes[:5]}... vs "
                                f"{part.classes[:5]}...)")
            if part.multi_label != first.multi_label:
                raise DataError("concat: cannot mix single-label and multi-label datasets")
        self.parts = list(parts)
        self.offsets = [0]
        for part in self.parts:
            self.offsets.append(self.offsets[-1] + len(part))
        super().__init__([s for part in self.parts for s in part.samples], first.classes, None,
                         multi_label=first.multi_label)

    @property
    def bad_image_count(self) -> int:
        return sum(part.bad_image_count for part in self.parts)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = bisect.bisect_right(self.offsets, index) - 1
        local = index - self.offsets[part]
        return self.parts[part][(local, seed) if seed is not None else local]


def repeat_factors(targets: Sequence[Any], num_classes: int, threshold: float) -> list[float]:
    """Repeat factor of each sample (LVIS repeat-factor sampling).

    Class c with frequency f_c (fraction of samples having it) gets r_c = max(1, sqrt(threshold / f_c)); a
    sample gets the largest r_c of its classes (1 when it has none).
    """
    counts = [0] * num_classes
    labels = [tuple(t) if isinstance(t, (tuple, list)) else (t,) for t in targets]
    for sample_labels in labels:
        for c in set(sample_labels):
            counts[c] += 1
    total = len(labels)
    class_factor = [max(1.0, math.sqrt(threshold / (n / total))) if n else 1.0 for n in counts]
    return [max((class_factor[c] for c in sample_labels), default=1.0) for sample_labels in labels]


def kfold_indices(length: int, fold: int, num_splits: int, *, test_mode: bool, seed: int | None) -> list[int]:
    """Indices of the held-out ``fold`` (``test_mode``) or of the other folds, in (shuffled) order.

    Folds are consecutive slices of the order, sizes differing by at most one; every index is in exactly
    one fold.
    """
    if length < num_splits:
        raise DataError(f"kfold: {length} samples cannot make {num_splits} folds")
    if seed is None:
        order = list(range(length))
    else:
        order = torch.randperm(length, generator=torch.Generator().manual_seed(seed)).tolist()
    bounds = [round(i * length / num_splits) for i in range(num_splits + 1)]
    held_out = order[bounds[fold]:bounds[fold + 1]]
    if test_mode:
        return sorted(held_out)
    held = set(held_out)
    return sorted(i for i in order if i not in held)


def build_wrapper(config: Any, transform: Callable | None, base: Path,
                  build_dataset: Callable[..., ClassificationDataset], *,
                  on_bad_image: OnBadImage = "skip") -> ClassificationDataset:
    """The wrapper dataset of a ``repeat``, ``concat``, ``class_balanced`` or ``kfold`` entry.

    Args:
        config: The wrapper's recipe entry.
        transform: Applied to each decoded image of the wrapped datasets.
        base: Folder relative paths are resolved against.
        build_dataset: Builds a wrapped entry (:func:`clsctl.data.datasets.build_dataset`, which calls this
            function: passed in so that this module does not import its caller).
        on_bad_image: What an unreadable image file does: ``skip`` or ``fail``.
    """

    def inner(entry: S.Dataset) -> ClassificationDataset:
        if isinstance(entry, S.WebDatasetShards):
            raise DataError(f"a {config.type} dataset cannot wrap a webdataset stream (it has no indexable "
                            "samples); list more shards in urls, or set epoch_size, instead")
        return build_dataset(entry, transform, base, on_bad_image=on_bad_image)

    if isinstance(config, S.ConcatDataset):
        return ConcatenatedDataset([inner(entry) for entry in config.datasets])
    dataset = inner(config.dataset)
    if isinstance(config, S.RepeatDataset):
        return IndexedDataset(dataset, list(range(len(dataset))) * config.times)
    if isinstance(config, S.ClassBalancedDataset):
        factors = repeat_factors(dataset.targets, len(dataset.classes), config.oversample_thr)
        return IndexedDataset(dataset, [i for i, r in enumerate(factors) for _ in range(math.ceil(r))])
    if isinstance(config, S.KFoldDataset):
        return IndexedDataset(dataset, kfold_indices(len(dataset), config.fold, config.num_splits,
                                                     test_mode=config.test_mode, seed=config.seed))
    raise TypeError(f"no builder for dataset wrapper {type(config).__name__}")
