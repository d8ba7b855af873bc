"""Real + synthetic mixing at synthetic share p (docs/loop.md, Mix ratio p) as a dataset and an epoch sampler.

An epoch visits every real training sample once plus ``min(round(p / (1 - p) * N_real), stack size)`` synthetic
samples drawn uniformly from the stack without replacement: no generated image is seen twice in an epoch, and while
the stack is smaller than the target the whole stack is used (the training set grows with the stack until the share
p is reached: the paper's "data explosion", bounded by the FIFO). With ``oversample`` the target is always met,
every stack sample once and the rest drawn with replacement.
Batches are fetched whole through ``__getitems__`` (one tensor gather per batch, no per-sample Python work) as
``common.samples.Batch`` dicts, without masks.
Stacked images are stored at the generator's resolution and brought to the consumer's view (``stack_view``) per
batch; where that view is the identity (the in-memory datasets) nothing is resized.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

from common.image_views import ImageView
from common.samples import Batch, Sample, make_batch
from common.seeds import epoch_order_seed
from datamodules.base import LabelledSplit


def synthetic_per_epoch(n_real: int, synthetic_share: float, stack_size: int, oversample: bool = False) -> int:
    """Synthetic samples per epoch: round(p / (1 - p) * N_real), capped at the stack size unless ``oversample``.

    0 for p = 0 or an empty stack; the whole stack for p = 1 (no real data: an epoch is the stack, each sample once).
    """
    if synthetic_share <= 0 or stack_size == 0:
        return 0
    if synthetic_share >= 1:
        return stack_size
    target = int(round(synthetic_share / (1.0 - synthetic_share) * n_real))
    return target if oversample else min(target, stack_size)


def realised_share(n_real: int, n_synthetic: int) -> float:
    """The synthetic share an epoch actually has: n_synthetic / (n_real + n_synthetic)."""
    total = n_real + n_synthetic
    return n_synthetic / total if total else 0.0


def synthetic_reuse(n_synthetic: int, stack_size: int) -> float:
    """Draws per stack sample per epoch (<= 1 unless oversampling); 0 for an empty stack."""
    return n_synthetic / stack_size if stack_size else 0.0


def fetch_batch(dataset: LabelledSplit, indices: torch.Tensor) -> Batch:
    """The batch of ``indices`` (images, labels, subgroups; no masks), gathered with one tensor index when the split
    is in memory."""
    if dataset.images is not None:
        return make_batch(dataset.images[indices], dataset.labels[indices], dataset.groups[indices])
    samples = [dataset[i] for i in indices.tolist()]
    return make_batch(torch.stack([torch.as_tensor(s["image"]) for s in samples]),
                      torch.as_tensor([int(s["label"]) for s in samples]),
                      torch.as_tensor([int(s["subgroup"]) for s in samples]))


class MixedTrainSet(Dataset):
    """Indices [0, N_real) are real samples, [N_real, N_real + len(stack)) synthetic ones (subgroup -1).

    ``real`` is already in the consumer's view; stacked images pass through ``stack_view`` (None: as stored).
    """

    def __init__(self, real: LabelledSplit, stack=None, stack_view: ImageView | None = None) -> None:
        self.real = real
        self.stack = stack
        self.n_real = len(real)
        self.n_stack = len(stack) if stack is not None else 0
        shape = stack.image_shape if self.n_stack else None
        self.stack_view = None if shape is None or stack_view is None or stack_view.is_identity_for(*shape[-2:]) \
            else stack_view
        # Real data and a small stack both in memory and seen as stored: join them once per stage (one copy), so
        # that every batch is a single gather per field, exactly what indexing in-memory tensors costs.
        self.joined = None
        stack_images = stack.images_in_memory() if self.n_stack and self.stack_view is None else None
        if stack_images is not None and real.images is not None and not getattr(real, "memory_mapped", False):
            self.joined = (torch.cat([real.images, stack_images]), torch.cat([real.labels, stack.labels.long()]),
                           torch.cat([real.groups, torch.full((self.n_stack,), -1, dtype=torch.long)]))

    def __len__(self) -> int:
        return self.n_real + self.n_stack

    def all_samples(self) -> Batch:
        """Every sample, in index order (real, then the stack), as one batch (an in-memory real split)."""
        if self.joined is not None:
            return make_batch(*self.joined)
        return self.__getitems__(list(range(len(self))))

    def __getitem__(self, index: int) -> Sample:
        batch = self.__getitems__([index])
        return Sample(image=batch["image"][0], label=batch["label"][0], subgroup=batch["subgroup"][0])

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.joined is not None:
            return make_batch(*(field[idx] for field in self.joined))
        is_real = idx < self.n_real
        if bool(is_real.all()):
            return fetch_batch(self.real, idx)
        real_pos = is_real.nonzero().flatten()
        syn_pos = (~is_real).nonzero().flatten()
        syn_images, syn_labels = self.stack.get_batch(idx[syn_pos] - self.n_real)
        if self.stack_view is not None:
            syn_images = self.stack_view(syn_images)
        syn_groups = torch.full((len(syn_pos),), -1, dtype=torch.long)
        if len(real_pos) == 0:
            return make_batch(syn_images, syn_labels.long(), syn_groups)
        real = fetch_batch(self.real, idx[real_pos])
        # real samples first, then synthetic: the batch's members are the sampler's, only their order within the
        # batch differs (irrelevant to a gradient step), which saves a permutation of every batch
        return make_batch(torch.cat([real["image"], syn_images]), torch.cat([real["label"], syn_labels.long()]),
                          torch.cat([real["subgroup"], syn_groups]))


def collate_batch(batch):
    """``__getitems__`` already returns a collated batch: pass it through."""
    return batch


class MixedEpochSampler(Sampler[int]):
    """Every real index once (none with ``include_real=False``: p = 1) plus ``n_synthetic`` stack indices per epoch,
    shuffled together.

    Seeded from (seed, epoch), so every DDP rank draws the same permutation (``MixedBatchSampler`` then splits it).
    Lightning calls ``set_epoch`` with the trainer's epoch before every epoch (a resumed fit included); without a
    trainer the epoch advances on every ``__iter__``.
    """

    def __init__(self, n_real: int, n_stack: int, n_synthetic: int, seed: int, shuffle: bool = True,
                 include_real: bool = True) -> None:
        self.n_real, self.n_stack, self.n_synthetic = n_real, n_stack, n_synthetic
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.include_real = bool(include_real)

    def __len__(self) -> int:
        return (self.n_real if self.include_real else 0) + self.n_synthetic

    def indices_for_epoch(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(epoch_order_seed(self.seed, epoch))
        real = torch.arange(self.n_real if self.include_real else 0)
        if self.n_synthetic == 0:
            synthetic = torch.empty(0, dtype=torch.long)
        elif self.n_synthetic <= self.n_stack:
            synthetic = torch.randperm(self.n_stack, generator=g)[: self.n_synthetic]
        else:  # the stack is smaller than one epoch's synthetic share: every sample once, the rest with replacement
            extra = torch.randint(0, self.n_stack, (self.n_synthetic - self.n_stack,), generator=g)
            synthetic = torch.cat([torch.randperm(self.n_stack, generator=g), extra])
        order = torch.cat([real, synthetic + self.n_real])
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=g)]
        return order

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def next_epoch(self) -> torch.Tensor:
        """The indices of the current epoch as a tensor; then advances to the next epoch."""
        order = self.indices_for_epoch(self.epoch)
        self.epoch += 1
        return order

    def __iter__(self):
        return iter(self.next_epoch().tolist())


class MixedBatchSampler(Sampler[torch.Tensor]):
    """Whole batches of a ``MixedEpochSampler`` epoch as index tensors, split across DDP ranks.

    Yielding tensors of indices (the loader hands them to ``MixedTrainSet.__getitems__`` as they are) avoids the
    DataLoader's per-sample Python iteration. Under DDP every rank computes the same epoch permutation, pads it by
    wrapping around to a multiple of the world size (as ``DistributedSampler`` does) and takes every world-size-th
    index from its rank on, so all ranks run the same number of batches.
    """

    def __init__(self, epoch_sampler: MixedEpochSampler, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.sampler = epoch_sampler  # the name Lightning looks for when it sets the epoch
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self._skip = 0

    def skip_batches(self, count: int) -> None:
        """Leave out the first ``count`` batches of the next epoch: a stage resumed from a mid-epoch checkpoint
        continues the interrupted epoch where it stopped (the same batches in the same order)."""
        self._skip = int(count)

    def _per_rank(self) -> int:
        return -(-len(self.sampler) // self.world_size)

    def __len__(self) -> int:
        return -(-self._per_rank() // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        order = self.sampler.next_epoch()
        if self.world_size > 1:
            padded = self._per_rank() * self.world_size
            if padded > len(order):
                order = torch.cat([order, order[: padded - len(order)]])
            order = order[self.rank :: self.world_size]
        skip, self._skip = self._skip, 0
        yield from torch.split(order, self.batch_size)[skip:]
