"""A distributed evaluation sampler without padding, so every test sample is counted exactly once under DDP.

Lightning's default DistributedSampler pads the last ranks with duplicates, which would change a metric; here
rank r takes indices r, r + W, r + 2W, ... and ranks may get one sample fewer than others.
"""

from __future__ import annotations

import torch.distributed as dist
from torch.utils.data import DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.indices = list(range(rank, len(dataset), num_replicas))
        self.num_samples = len(self.indices)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples
