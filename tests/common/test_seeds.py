"""Every random stream of a run is a pinned function of the run's seed (changing one changes every result)."""

import torch

from common.seeds import epoch_order_seed, index_seed, seeded_generator, stage_seed, step_seed


def test_stage_seeds_are_pinned_and_depend_on_seed_generation_and_stage():
    assert stage_seed(0, 1, "generator") == 2069875816
    assert stage_seed(3, 2, "classifier/lenet") == 1791490459
    seeds = {stage_seed(s, g, st) for s in (0, 1) for g in (0, 1) for st in ("generator", "classifier/lenet")}
    assert len(seeds) == 8 and all(0 <= x < 2**31 for x in seeds)


def test_item_and_step_seeds_are_pinned():
    assert index_seed(5, 7) == 5 * 1_000_003 + 7
    assert index_seed(5, 7) != index_seed(5, 8) != index_seed(6, 7)
    assert step_seed(11, 2, 3) == 11 + 7919 * 2 + 104_729 * 4
    assert step_seed(11, 0, -1) == 11  # an epoch's start
    assert step_seed(11, 2, 3, rank=0) == step_seed(11, 2, 3)  # rank 0 draws what a one-process run draws
    assert step_seed(11, 2, 3, rank=1) == (11 + 7919 * 2 + 104_729 * 4 + 1_000_000_007) & 0x7FFFFFFF
    per_rank = {step_seed(11, e, s, r) for e in range(3) for s in range(-1, 50) for r in range(8)}
    assert len(per_rank) == 3 * 51 * 8  # no two (epoch, step, rank) share a seed


def test_dataset_streams_are_independent_and_reproducible():
    a = torch.randperm(10, generator=seeded_generator(1, 2))
    assert torch.equal(a, torch.randperm(10, generator=seeded_generator(1, 2)))
    assert not torch.equal(a, torch.randperm(10, generator=seeded_generator(1, 3)))
    assert seeded_generator(1, 2).initial_seed() == 1596810411



def test_epoch_order_seeds_are_pinned():
    assert epoch_order_seed(3, 2) == 3 * 100_003 + 2
    assert len({epoch_order_seed(s, e) for s in range(4) for e in range(50)}) == 200
