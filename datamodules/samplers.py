"""Samplers that split evaluation and generation across DDP ranks without padding.

Lightning's default DistributedSampler pads the last ranks with duplicates, which would change a metric or generate
a sample twice; these give every item to exactly one rank, so results equal a single-process run.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler, Sampler

from common.distributed import rank_and_world_size


def unpadded_sampler(dataset, num_replicas: int | None = None, rank: int | None = None) -> DistributedSampler:
    """Rank r takes indices r, r + W, r + 2W, ... (ranks may get one sample fewer than others): Lightning's
    ``UnrepeatedDistributedSampler`` without shuffling, on this process's rank and world size (1 process without a
    process group). It refuses a split that would leave a rank without a sample (DDP would wait for it)."""
    default_rank, default_size = rank_and_world_size()
    num_replicas = default_size if num_replicas is None else num_replicas
    rank = default_rank if rank is None else rank
    return UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)


class AlignedBatchSampler(Sampler[list[int]]):
    """Batches of consecutive indices [b B, (b + 1) B), batch b on rank b mod W.

    Every batch holds the same items whatever the number of ranks, so anything computed per batch (the MC-dropout
    masks of the uncertainty filter, seeded by the batch's first index) is the same in a 1- and an N-process run.
    Only a block with fewer batches than ranks gets smaller batches (B = ceil(N / W)), so that no rank is idle
    (Lightning refuses a rank without a batch).
    """

    def __init__(self, num_items: int, batch_size: int, rank: int | None = None, world_size: int | None = None,
                 skip: Collection[int] = ()):
        """``skip``: first indices of batches to leave out (those a resumed generation stage has already)."""
        default_rank, default_size = rank_and_world_size()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_size if world_size is None else int(world_size)
        self.num_items, self.batch_size = int(num_items), int(batch_size)
        if -(-self.num_items // self.batch_size) < self.world_size:  # fewer batches than ranks
            self.batch_size = max(1, -(-self.num_items // self.world_size))
        self.skip = frozenset(int(start) for start in skip)

    def _batch_starts(self) -> list[int]:
        every = range(self.rank * self.batch_size, self.num_items, self.world_size * self.batch_size)
        return [start for start in every if start not in self.skip]

    def __iter__(self):
        for start in self._batch_starts():
            yield list(range(start, min(start + self.batch_size, self.num_items)))

    def __len__(self) -> int:
        return len(self._batch_starts())


def batch_first_index(indices: torch.Tensor) -> int:
    """The index that identifies an aligned batch (its first item)."""
    return int(indices.min()) if len(indices) else 0
