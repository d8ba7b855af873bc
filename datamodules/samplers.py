"""A distributed evaluation sampler without padding, so every test sample is counted exactly once under DDP.

Lightning's default DistributedSampler pads the last ranks with duplicates, which would change a metric; here
rank r takes indices r, r + W, r + 2W, ... and ranks may get one sample fewer than others.
"""

from __future__ import annotations

import torch.distributed as dist
from torch.utils.data import DistributedSampler


def distributed_rank_and_size() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class UnpaddedDistributedSampler(DistributedSampler):
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        default_rank, default_size = distributed_rank_and_size()
        num_replicas = default_size if num_replicas is None else num_replicas
        rank = default_rank if rank is None else rank
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.indices = list(range(rank, len(dataset), num_replicas))
        self.num_samples = len(self.indices)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples
