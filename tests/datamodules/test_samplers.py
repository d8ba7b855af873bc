"""Evaluation and generation split across ranks: every item exactly once, and generation batches that do not depend
on the number of ranks."""

import pytest

from datamodules.samplers import AlignedBatchSampler, unpadded_sampler


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("size", [0, 3, 7, 101])
def test_unpadded_sampler_gives_every_item_to_exactly_one_rank_in_strides(world_size, size):
    """Lightning's UnrepeatedDistributedSampler gives the split the project's own sampler gave: r, r + W, ..."""
    shares = [list(unpadded_sampler(range(size), num_replicas=world_size, rank=r)) for r in range(world_size)]
    assert shares == [list(range(r, size, world_size)) for r in range(world_size)]
    assert [len(unpadded_sampler(range(size), world_size, r)) for r in range(world_size)] == [len(s) for s in shares]


def test_the_unpadded_sampler_refuses_to_leave_a_rank_without_a_sample():
    with pytest.raises(AssertionError):
        unpadded_sampler(range(2), num_replicas=3, rank=2)


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
