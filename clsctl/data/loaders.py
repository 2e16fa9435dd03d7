"""DataLoaders with a seeded, epoch-aware sampler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from clsctl.data.dataset_base import sample_seed
from clsctl.recipe.schema import LoaderConfig


class SeededSampler(Sampler):
    """Yields ``(index, sample_seed)`` pairs; the order and the seeds depend only on (seed, epoch).

    With ``num_replicas > 1`` each rank takes every ``num_replicas``-th index of the shuffled order (padded
    by repetition so all ranks take the same number of steps), as ``DistributedSampler`` does.

    Args:
        length: Dataset length.
        shuffle: Shuffle each epoch.
        seed: Base seed of the run.
        num_replicas: Number of processes sharing the data.
        rank: This process's index.
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch whose order and seeds the next iteration yields.

        Args:
            epoch: Epoch index.
            start: Samples of this rank's share to skip (resuming in the middle of an epoch).
        """
        self.epoch = epoch
        self.start = start

    def per_replica(self) -> int:
        """Samples each rank takes in a whole epoch."""
        return -(-self.length // self.num_replicas)

    def __len__(self) -> int:
        return max(self.per_replica() - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        total = self.per_replica() * self.num_replicas
        order += order[: total - len(order)]
        for index in order[self.rank : total : self.num_replicas][self.start :]:
            yield index, sample_seed(self.seed, self.epoch, index)


def build_loader(dataset: Dataset, config: LoaderConfig, *, train: bool, seed: int = 0, pin_memory: bool = False,
                 num_replicas: int = 1, rank: int = 0) -> Any:
    """A DataLoader for one split (a :class:`~clsctl.data.shards.StreamLoader` for tar shards).

    Args:
        dataset: Dataset accepting ``(index, seed)`` keys.
        config: Loader section of the recipe.
        train: Shuffle, and drop the last partial batch if the recipe asks.
        seed: Base seed.
        pin_memory: Page-locked host memory, for faster copies to a GPU.
        num_replicas: Processes sharing the data (distributed training).
        rank: This process's index.
    """
    from clsctl.data.datasets import gives_encoded_jpegs
    from clsctl.data.shards import ShardDataset, StreamLoader

    workers = config.num_workers
    if isinstance(dataset, ShardDataset):  # a stream of tar shards: split by shard, batched in the main process
        return StreamLoader(dataset, batch_size=config.batch_size, num_workers=workers, train=train,
                            drop_last=config.drop_last, seed=seed, pin_memory=pin_memory,
                            prefetch_factor=config.prefetch_factor, num_replicas=num_replicas, rank=rank)
    sampler = SeededSampler(len(dataset), shuffle=train, seed=seed, num_replicas=num_replicas, rank=rank)
    collate_fn = None
    if gives_encoded_jpegs(dataset):  # type: ignore[arg-type]
        from clsctl.data.gpu_decode import collate as collate_fn
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=train and config.drop_last,
        persistent_workers=config.persistent_workers and workers > 0,
        prefetch_factor=config.prefetch_factor if workers > 0 else None,
    )


class ShardedBatchSampler(Sampler[list[int]]):
    """Evaluation batches without padding: consecutive indices in dataset order, dealt to the processes in turn.

    Batch ``b`` (indices ``b*batch_size`` up to the next multiple) goes to process ``b % num_replicas``, so every
    sample is evaluated exactly once across the processes, and each batch holds exactly the samples it holds in
    one process's pass. That matters for exactness: on the CPU a convolution's output for one image can differ
    in the last bit with the batch it ran in, so other batches would make other numbers.

    Args:
        length: Dataset length.
        batch_size: Images per batch.
        num_replicas: Number of processes sharing the data.
        rank: This process's index.
    """

    def __init__(self, length: int, batch_size: int, *, num_replicas: int = 1, rank: int = 0) -> None:
        if batch_size < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"bad batch_size {batch_size} or rank {rank} of {num_replicas}")
        self.length, self.batch_size, self.num_replicas, self.rank = length, batch_size, num_replicas, rank

    def __iter__(self) -> Iterator[list[int]]:
        batches = -(-self.length // self.batch_size)
        for batch in range(self.rank, batches, self.num_replicas):
            start = batch * self.batch_size
            yield list(range(start, min(start + self.batch_size, self.length)))

    def __len__(self) -> int:
        batches = -(-self.length // self.batch_size)
        return len(range(self.rank, batches, self.num_replicas))

    def indices(self) -> list[int]:
        """The dataset indices this process evaluates, in the order it yields them."""
        return [index for batch in self for index in batch]


def build_eval_loader(dataset: Dataset, config: LoaderConfig, *, pin_memory: bool = False, num_replicas: int = 1,
                      rank: int = 0) -> Any:
    """A loader for evaluation: dataset order, no shuffling, no padding, this process's share of the batches
    (:class:`ShardedBatchSampler`; for tar shards a :class:`~clsctl.data.shards.StreamLoader` over this
    process's shards)."""
    from clsctl.data.shards import ShardDataset

    workers = config.num_workers
    if isinstance(dataset, ShardDataset):
        return build_loader(dataset, config, train=False, pin_memory=pin_memory, num_replicas=num_replicas,
                            rank=rank)
    return DataLoader(
        dataset,
        batch_sampler=ShardedBatchSampler(len(dataset), config.batch_size, num_replicas=num_replicas, rank=rank),
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,  # one pass
        prefetch_factor=config.prefetch_factor if workers > 0 else None,
    )
