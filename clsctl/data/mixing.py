"""Batch-level mixing for training: Mixup, CutMix and ResizeMix.

:func:`apply_batch_augment` picks at most one of the recipe's ``data.batch_augments`` per batch (each with
its ``prob``; entries without one share what the others leave; nothing happens with the rest), mixes every
image with another of the same batch (a random permutation) and returns soft targets that mix the two
samples' targets by the share of each in the image. Every random draw comes from the given generator, so a
run is reproducible. :class:`BatchMixer` is what the training loop uses: that function with a generator of
its own, seeded per epoch and process, whose state a checkpoint keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clsctl.recipe import schema as S

BatchAugmentConfig = S.Mixup | S.CutMix | S.ResizeMix


def resolve_probs(configs: Sequence[BatchAugmentConfig]) -> list[float]:
    """Each entry's chance per batch: its ``prob``, or an equal share of what the given probs leave."""
    given = sum(c.prob for c in configs if c.prob is not None)
    if given > 1 + 1e-9:
        raise ValueError(f"batch augment probabilities add up to {given:g} > 1")
    unset = [c for c in configs if c.prob is None]
    share = max(0.0, 1.0 - given) / len(unset) if unset else 0.0
    return [c.prob if c.prob is not None else share for c in configs]


def choose_augment(configs: Sequence[BatchAugmentConfig], generator: torch.Generator) -> BatchAugmentConfig | None:
    """One entry drawn by probability, or None (no mixing for this batch)."""
    if not configs:
        return None
    draw = float(torch.rand(1, generator=generator))
    cumulative = 0.0
    for config, prob in zip(configs, resolve_probs(configs)):
        cumulative += prob
        if draw < cumulative:
            return config
    return None


def _beta(alpha: float, generator: torch.Generator) -> float:
    # torch's Beta sampler takes no generator: seed NumPy's from ours instead.
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def to_soft_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(N,)`` class indices -> one-hot; ``(N, C)`` multi-hot -> float, ignored (-1) labels as 0."""
    if targets.ndim == 1:
        return F.one_hot(targets.long(), num_classes).float()
    return targets.float().clamp(min=0)


def permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random permutation of ``range(n)`` drawn from the CPU ``generator``, on ``device``.

    Drawn on the CPU so a run mixes the same images on any device. To a GPU it travels from pinned memory
    without blocking: a copy from ordinary (pageable) memory would make the host wait for the GPU queue to
    drain once per mixed batch.
    """
    perm = torch.randperm(n, generator=generator)
    if device.type != "cuda":
        return perm.to(device)
    return perm.pin_memory().to(device, non_blocking=True)


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """``(y1, y2, x1, x2)`` of a box covering about ``1 - lam`` of the image, centred at a uniform random point
    and clipped to the image (so it can be smaller)."""
    cut = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy = int(torch.randint(0, height, (1,), generator=generator))
    cx = int(torch.randint(0, width, (1,), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return y1, y2, x1, x2


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """``lam * x + (1 - lam) * x[perm]``; returns images, soft targets, lam and perm."""
    lam = _beta(alpha, generator)
    perm = permutation(len(images), generator, images.device)
    mixed = images * lam + images[perm] * (1.0 - lam)
    return mixed, targets * lam + targets[perm] * (1.0 - lam), lam, perm


def cutmix(images: torch.Tensor, targets: torch.Tensor, alpha: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Paste the box of ``x[perm]`` into ``x``; lam is the share of the image not covered by the box."""
    height, width = images.shape[-2:]
    box_lam = _beta(alpha, generator)
    perm = permutation(len(images), generator, images.device)
    y1, y2, x1, x2 = cutmix_box(height, width, box_lam, generator)
    mixed = images.clone()
    mixed[..., y1:y2, x1:x2] = images[perm][..., y1:y2, x1:x2]
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)  # the clipped box's real share
    return mixed, targets * lam + targets[perm] * (1.0 - lam), lam, perm


def resizemix(images: torch.Tensor, targets: torch.Tensor, alpha: float, lam_min: float, lam_max: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Paste the whole of ``x[perm]``, resized to a random box covering about ``1 - lam`` of the image,
    lam ~ Beta(alpha, alpha) scaled into [lam_min, lam_max]."""
    height, width = images.shape[-2:]
    box_lam = lam_min + (lam_max - lam_min) * _beta(alpha, generator)
    perm = permutation(len(images), generator, images.device)
    y1, y2, x1, x2 = cutmix_box(height, width, box_lam, generator)
    mixed = images.clone()
    if y2 > y1 and x2 > x1:
        small = F.interpolate(images[perm].float(), size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)
        mixed[..., y1:y2, x1:x2] = small.to(images.dtype)
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
    return mixed, targets * lam + targets[perm] * (1.0 - lam), lam, perm


def apply_batch_augment(images: torch.Tensor, targets: torch.Tensor, num_classes: int,
                        config_list: Sequence[BatchAugmentConfig],
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a training batch with one of ``config_list`` (or none), returning images and soft targets.

    Args:
        images: ``(N, C, H, W)`` batch (any device).
        targets: ``(N,)`` class indices or ``(N, C)`` multi-hot targets.
        num_classes: Width of the soft targets.
        config_list: The recipe's ``data.batch_augments``.
        generator: CPU generator every random draw comes from.

    Returns:
        The (possibly) mixed images and ``(N, num_classes)`` float targets whose rows sum to 1 for
        single-label data.
    """
    soft = to_soft_targets(targets, num_classes).to(images.device)
    config = choose_augment(config_list, generator)
    if config is None or len(images) < 2:
        return images, soft
    if isinstance(config, S.Mixup):
        mixed, soft, _, _ = mixup(images, soft, config.alpha, generator)
    elif isinstance(config, S.CutMix):
        mixed, soft, _, _ = cutmix(images, soft, config.alpha, generator)
    elif isinstance(config, S.ResizeMix):
        mixed, soft, _, _ = resizemix(images, soft, config.alpha, config.lam_min, config.lam_max, generator)
    else:
        raise TypeError(f"no batch augment for {type(config).__name__}")
    return mixed, soft


class BatchMixer:
    """``mixer(images, targets)`` mixes a training batch with one of ``configs`` (see :func:`apply_batch_augment`).

    Every draw comes from the mixer's own CPU generator, seeded by (seed, epoch, rank) at :meth:`set_epoch`, so
    a resumed run mixes exactly as an uninterrupted one; inside an epoch, :meth:`state_dict` and
    :meth:`load_state_dict` carry the generator's position through a checkpoint.

    Args:
        configs: The recipe's ``data.batch_augments``.
        num_classes: Width of the soft targets.
        seed: The run's seed.
        rank: This process's rank (each process mixes its own batches differently).
    """

    def __init__(self, configs: Sequence[BatchAugmentConfig], num_classes: int, seed: int = 0, rank: int = 0) -> None:
        self.configs = list(configs)
        self.num_classes = num_classes
        self.seed = seed
        self.rank = rank
        self.generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        """Start the draws of ``epoch`` (0-based)."""
        self.generator.manual_seed((self.seed * 1_000_003 + epoch) * 1009 + self.rank)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return apply_batch_augment(images, targets, self.num_classes, self.configs, self.generator)

    def state_dict(self) -> dict[str, Any]:
        """The generator's position (data ``torch.load(weights_only=True)`` accepts)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any] | torch.Tensor) -> None:
        """Continue from what :meth:`state_dict` saved, or from the bare generator state that checkpoints
        written before this class hold."""
        self.generator.set_state(state if isinstance(state, torch.Tensor) else state["generator"])
