"""Evaluation and generation split across ranks: every item exactly once, and generation batches that do not depend
on the number of ranks."""

import pytest

from datamodules.samplers import AlignedBatchSampler, UnpaddedDistributedSampler


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_unpadded_sampler_gives_every_item_to_exactly_one_rank(world_size):
    shares = [list(UnpaddedDistributedSampler(range(101), num_replicas=world_size, rank=r)) for r in range(world_size)]
    assert sorted(i for share in shares for i in share) == list(range(101))
    assert [len(s) for s in shares] == [len(range(r, 101, world_size)) for r in range(world_size)]


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_aligned_batches_are_the_same_for_any_number_of_ranks(world_size):
    batches = {tuple(batch) for rank in range(world_size)
               for batch in AlignedBatchSampler(1300, 500, rank=rank, world_size=world_size)}
    assert batches == {tuple(range(0, 500)), tuple(range(500, 1000)), tuple(range(1000, 1300))}


def test_aligned_batches_go_round_robin_and_shrink_only_when_ranks_would_idle():
    assert list(AlignedBatchSampler(10, 3, rank=1, world_size=2)) == [[3, 4, 5], [9]]
    assert len(AlignedBatchSampler(10, 3, rank=1, world_size=2)) == 2
    # 100 items in batches of 256 on 2 ranks: batches of 50 so that both ranks generate
    assert [list(AlignedBatchSampler(100, 256, rank=r, world_size=2)) for r in (0, 1)] == [
        [list(range(0, 50))], [list(range(50, 100))]]
