"""Loaders: the evaluation batch sampler that splits batches over processes without padding."""

import pytest
import torch

from clsctl.data.loaders import ShardedBatchSampler, build_eval_loader
from clsctl.recipe.schema import LoaderConfig


@pytest.mark.parametrize("length, batch_size, world", [(9, 4, 2), (10, 3, 3), (2, 4, 3), (16, 4, 4)])
def test_processes_share_the_single_process_batches_each_sample_once(length: int, batch_size: int,
                                                                     world: int) -> None:
    single = list(ShardedBatchSampler(length, batch_size))
    assert [i for batch in single for i in batch] == list(range(length))
    shares = [list(ShardedBatchSampler(length, batch_size, num_replicas=world, rank=r)) for r in range(world)]
    # every batch of a process is a batch of the single-process pass, and together they are all of them
    assert sorted(batch for share in shares for batch in share) == single
    for rank, share in enumerate(shares):
        assert share == single[rank::world] and len(ShardedBatchSampler(length, batch_size, num_replicas=world,
                                                                        rank=rank)) == len(share)


def test_eval_loader_yields_the_share_in_order() -> None:
    dataset = torch.utils.data.TensorDataset(torch.arange(9.0)[:, None], torch.arange(9))
    loader = build_eval_loader(dataset, LoaderConfig(batch_size=4, num_workers=0), num_replicas=2, rank=1)
    assert [targets.tolist() for _, targets in loader] == [[4, 5, 6, 7]]
    assert loader.batch_sampler.indices() == [4, 5, 6, 7]
